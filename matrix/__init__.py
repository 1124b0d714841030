"""The shopping-cart matrix: which carts take status updates and how, and the routing decision."""

from .loader import (
    MATRIX_ENV,
    TAKES_UPDATES,
    UPDATE_KINDS,
    CartRow,
    Matrix,
    MatrixError,
    builtin_path,
    load_matrix,
    matrix_schema,
    normalize,
    read_matrix_file,
)
from .lookup import EXIT_DIRECT, EXIT_NEEDS_OSS, EXIT_UNKNOWN, Answer, Lookup, answer, find_cart
from .routing import decide_route, why_not_native

__all__ = [
    "EXIT_DIRECT",
    "EXIT_NEEDS_OSS",
    "EXIT_UNKNOWN",
    "MATRIX_ENV",
    "TAKES_UPDATES",
    "UPDATE_KINDS",
    "Answer",
    "CartRow",
    "Lookup",
    "Matrix",
    "MatrixError",
    "answer",
    "builtin_path",
    "decide_route",
    "find_cart",
    "load_matrix",
    "matrix_schema",
    "normalize",
    "read_matrix_file",
    "why_not_native",
]
