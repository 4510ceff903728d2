"""The regression gate: ``lrun compare BASE.json NEW.json`` and ``lrun SCENARIO --baseline BASE.json``."""
