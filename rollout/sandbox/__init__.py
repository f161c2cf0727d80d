"""Local stand-ins for the sandbox and tests."""
