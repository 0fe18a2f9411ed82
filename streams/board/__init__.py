"""The wallboard: `cxstream board` serves a TV-style page of live CX numbers."""
