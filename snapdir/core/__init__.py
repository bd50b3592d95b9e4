"""The pure core: manifest codec and transfer planning. No I/O here."""
