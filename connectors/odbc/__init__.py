"""ODBC connector: any ERP database reachable through an ODBC driver (pyodbc).

Docs: https://github.com/mkleehammer/pyodbc/wiki . See docs/connectors/odbc.md.
"""

from connectors.odbc.client import OdbcReader, OdbcWriter, named_to_qmark
from connectors.odbc.mapping import to_canonical
from connectors.odbc.settings import OdbcEntity, OdbcSettings

__all__ = [
    "OdbcEntity",
    "OdbcReader",
    "OdbcSettings",
    "OdbcWriter",
    "named_to_qmark",
    "to_canonical",
]
