"""Small shared helpers: input validation and the map step."""
