"""Model dirs: ModelScope hub resolution (cache first), 1.x/0.x layout detection and safe weight loading,
and writing new model dirs."""
