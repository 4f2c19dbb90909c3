"""Small seeded C programs: integer arithmetic, branches, calls to earlier functions and, on request, loops.

Programs with and without loops use the same statements, comparisons and increments, so only the shape of
the control flow tells them apart. The sanity tasks (:mod:`ncc.tasks.loops`, :mod:`ncc.tasks.dataflow`)
train on them.
"""

from __future__ import annotations

import random

__all__ = ["generate_program", "GENERATOR_VERSION"]

#: Bumped when the generator's output changes for the same arguments.
GENERATOR_VERSION = 1


class _Writer:
    """Writes one function body: statements over a fixed set of int variables."""

    OPERATORS = ("+", "-", "*", "&", "|", "^")
    COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")

    def __init__(self, rng: random.Random, variables: list[str], callees: list[tuple[str, int]],
                 max_statements: int, loops: bool):
        self.rng = rng
        self.variables = variables
        self.callees = callees
        self.max_statements = max_statements
        self.loops = loops
        self.counters = 0

    def operand(self) -> str:
        rng = self.rng
        return rng.choice(self.variables) if rng.random() < 0.7 else str(rng.randint(1, 9))

    def expression(self) -> str:
        rng = self.rng
        text = self.operand()
        for _ in range(rng.randint(0, 2)):
            text = f"{text} {rng.choice(self.OPERATORS)} {self.operand()}"
        return text

    def condition(self) -> str:
        return f"{self.rng.choice(self.variables)} {self.rng.choice(self.COMPARISONS)} {self.operand()}"

    def simple(self, indent: str) -> str:
        rng = self.rng
        target = rng.choice(self.variables)
        roll = rng.random()
        if self.callees and roll < 0.2:
            name, arity = rng.choice(self.callees)
            arguments = ", ".join(self.expression() for _ in range(arity))
            return f"{indent}{target} = {name}({arguments});"
        if roll < 0.35:
            return f"{indent}{target}{rng.choice(('++', '--', ' += 2', ' -= 3'))};"
        return f"{indent}{target} = {self.expression()};"

    def loop(self, indent: str, depth: int) -> str:
        rng = self.rng
        kind = rng.choice(("for", "while", "do"))
        inner = self.block(indent + "    ", depth + 1)
        bound = self.operand()
        if kind == "for":
            counter = f"i{self.counters}"
            self.counters += 1
            step = rng.choice((f"{counter}++", f"{counter} += 2", f"{counter} = {counter} + 1"))
            return f"{indent}for (int {counter} = 0; {counter} < {bound}; {step}) {{\n{inner}\n{indent}}}"
        variable = rng.choice(self.variables)
        update = f"{indent}    {variable} = {variable} - {rng.randint(1, 3)};"
        if kind == "while":
            return f"{indent}while ({variable} > {bound}) {{\n{inner}\n{update}\n{indent}}}"
        return f"{indent}do {{\n{inner}\n{update}\n{indent}}} while ({variable} > {bound});"

    def branch(self, indent: str, depth: int) -> str:
        text = f"{indent}if ({self.condition()}) {{\n{self.block(indent + '    ', depth + 1)}\n{indent}}}"
        if self.rng.random() < 0.5:
            text += f" else {{\n{self.block(indent + '    ', depth + 1)}\n{indent}}}"
        return text

    def statement(self, indent: str, depth: int) -> str:
        roll = self.rng.random()
        if depth < 2 and roll < 0.25:
            return self.branch(indent, depth)
        if self.loops and depth < 2 and roll < 0.4:
            return self.loop(indent, depth)
        return self.simple(indent)

    def block(self, indent: str, depth: int) -> str:
        count = self.rng.randint(1, max(1, self.max_statements - depth))
        return "\n".join(self.statement(indent, depth) for _ in range(count))


def generate_program(seed: int, with_loop: bool, max_functions: int = 3, max_statements: int = 5) -> str:
    """One C program, a function of its arguments only.

    Args:
        seed: the generator seed.
        with_loop: put at least one loop in (else none at all).
        max_functions: functions in the program, 1 to this.
        max_statements: statements per block, 1 to this.

    Returns:
        The C source text.
    """
    rng = random.Random(seed)
    count = rng.randint(1, max_functions)
    looping = rng.randrange(count) if with_loop else -1
    functions: list[str] = []
    callees: list[tuple[str, int]] = []
    for index in range(count):
        arity = rng.randint(1, 3)
        parameters = [f"p{k}" for k in range(arity)]
        locals_ = [f"v{k}" for k in range(rng.randint(1, 3))]
        writer = _Writer(rng, parameters + locals_, list(callees), max_statements,
                         loops=with_loop and rng.random() < 0.5)
        body = writer.block("    ", 0)
        if index == looping:  # make sure this one loops, at a random place of its top level
            lines = body.split("\n")
            anchors = [i for i, line in enumerate(lines) if line.startswith("    ") and not line.startswith("     ")
                       and not line.startswith("    }")] or [0]
            position = rng.choice(anchors)
            body = "\n".join(lines[:position] + [writer.loop("    ", 1)] + lines[position:])
        declarations = "\n".join(f"    int {name} = {rng.randint(0, 9)};" for name in locals_)
        result = " + ".join(rng.sample(parameters + locals_, k=min(2, len(parameters + locals_))))
        signature = ", ".join(f"int {p}" for p in parameters)
        name = f"f{index}"
        functions.append(f"int {name}({signature}) {{\n{declarations}\n{body}\n    return {result};\n}}\n")
        callees.append((name, arity))
    return "\n".join(functions)
