"""Figure functions, one module per pipeline stage, one visual style (:mod:`.style`)."""
