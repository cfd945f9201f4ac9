"""Sans-IO MSNP wire format: parsing, framing and formatting, free of Twisted."""
