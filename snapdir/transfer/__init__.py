"""The transfer engine: push (walk → hash → diff → upload), fetch (manifest → diff →
download+verify), checkout (cache → destination), verify, stage."""
