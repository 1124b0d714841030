"""The shopping-cart matrix: which carts take status updates and how (a library: it knows nothing of plugins)."""

from .loader import (
    MATRIX_ENV,
    OSS_CONNECTOR,
    TAKES_UPDATES,
    UPDATE_KINDS,
    CartRow,
    Matrix,
    MatrixError,
    PublishedLimit,
    builtin_path,
    load_matrix,
    matrix_schema,
    normalize,
    read_matrix_file,
)
from .lookup import EXIT_DIRECT, EXIT_NEEDS_OSS, EXIT_UNKNOWN, Answer, Lookup, answer, find_cart

__all__ = [
    "EXIT_DIRECT",
    "EXIT_NEEDS_OSS",
    "EXIT_UNKNOWN",
    "MATRIX_ENV",
    "OSS_CONNECTOR",
    "TAKES_UPDATES",
    "UPDATE_KINDS",
    "Answer",
    "CartRow",
    "Lookup",
    "Matrix",
    "MatrixError",
    "PublishedLimit",
    "answer",
    "builtin_path",
    "find_cart",
    "load_matrix",
    "matrix_schema",
    "normalize",
    "read_matrix_file",
]
