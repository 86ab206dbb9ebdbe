"""malt: the Multi-Attribution Learning Toolkit for conversion-rate prediction."""

__version__ = "0.1.0"
