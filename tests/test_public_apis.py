"""Our code uses Django's and Celery's public APIs only (the developer guide's rule).

Private internals it leaned on before, each with the public way now used: the on-commit queue
and savepoint ids of a connection (`transaction.on_commit` with a shared kick, in
messaging.services.pace_after_commit) and the admin site's registry
(`AdminSite.is_registered` and `get_model_admin`, in accounts.permissions).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_DIRS = ("accounts", "config", "messaging", "meta", "triggers", "webhooks")
PRIVATE_DJANGO_ATTRIBUTES = {
    "run_on_commit",
    "savepoint_ids",
    "atomic_blocks",
    "in_atomic_block",
    "_registry",
}


def private_uses(tree: ast.AST) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_DJANGO_ATTRIBUTES
    ]


def test_no_private_django_internals_in_our_code():
    found = []
    for folder in APP_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, name in private_uses(ast.parse(path.read_text())):
                found.append(f"{path.relative_to(ROOT)}:{line} uses {name}")
    assert found == []


def test_the_check_sees_a_private_use():
    source = "def f(connection):\n    return connection.run_on_commit\n"
    assert private_uses(ast.parse(source)) == [(2, "run_on_commit")]
