"""One sub-package per outside system. Connectors never import Prefect."""
