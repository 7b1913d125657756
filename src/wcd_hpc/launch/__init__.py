"""Launchers start workers; they never run trials themselves."""
