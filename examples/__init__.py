"""Reference models and the demo that mmgov governs."""
