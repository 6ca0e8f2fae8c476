"""What the service serves to browsers from the package: files and pages, no API logic."""
