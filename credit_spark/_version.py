"""The package version: the one place it is written (setup.py reads it without importing the
package; ``credit-spark --version`` and the logged models' requirements read it back)."""
__version__ = "0.3.0"
