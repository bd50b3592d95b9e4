"""The click shell: one module per verb, loaded only when that verb runs."""
