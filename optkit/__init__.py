"""optkit: recipe-driven model optimisation, export and honest evaluation."""

__version__ = "0.1.0"
__all__ = ["__version__"]
