"""Sans-I/O session logic per document (``room.Room``) and wire conversions (``wire``)."""
