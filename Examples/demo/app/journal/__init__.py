"""A tiny journal application, shipped as Backstop's demo source tree."""
