"""Small applications built on vairo-async; the test suite runs each of them for real."""
