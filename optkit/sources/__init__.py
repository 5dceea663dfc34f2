"""Where models and data come from: hub ids, local paths and files inside installed packages."""
