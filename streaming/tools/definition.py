"""A tool: a typed Python function of the host project that the model may call, as the requesting user.

``@tool`` reads what the model needs from the function itself: its name, its description (the
docstring's first paragraph) and the JSON schema of its input, which pydantic's ``TypeAdapter`` derives
from the signature (parameter descriptions come from ``Annotated[..., Field(description=...)]`` or
from the docstring's ``Args:`` section). The same adapter validates what the model sends. A parameter
named ``user`` is not shown to the model: the app passes the user the reply is for, so a tool can only
reach what that user may. Nothing is derived until it is first needed (the system check asks first),
so that a tool module imports without pydantic's work, and a tool that cannot be described is
reported by ``streaming.E008`` instead of failing an import.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, overload

from pydantic import ConfigDict, TypeAdapter, ValidationError

#: The parameter through which a tool receives the requesting user (never shown to the model).
USER_PARAMETER = "user"
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what every vendor accepts as a function name
_ARG_LINE = re.compile(r"^\s{2,}(\*{0,2}\w+)(?:\s*\([^)]*\))?\s*:\s*(.+)$")


class ToolError(Exception):
    """Raise it in a tool to tell the model (and the user) why the call failed, in these words."""


class InvalidToolInput(Exception):
    """The model's input does not fit the tool's signature: the model is told what is wrong."""


class Tool:
    """A function offered to the model. Calling the ``Tool`` calls the function, unchanged."""

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        needs_approval: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        self._description = description
        self.needs_approval = needs_approval
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(function)
        self.takes_user = USER_PARAMETER in inspect.signature(function).parameters
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    @property
    def description(self) -> str:
        if self._description is not None:
            return self._description
        doc = inspect.getdoc(self.function) or ""
        return doc.split("\n\n", 1)[0].replace("\n", " ").strip()

    @functools.cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        if not _NAME.match(self.name):
            raise TypeError(f"{self.name!r} is not a tool name: use letters, digits, _ and -, at most 64.")
        # A callable's adapter validates its arguments (and calls it: this one returns them).
        signature: Any = _input_signature(self.function)
        return TypeAdapter(signature, config=ConfigDict(title=self.name))

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the tool's input (an object), with the docstring's parameter notes: made
        once (every model call of a reply sends it), and not to be changed by its users."""
        return self._parameters

    @functools.cached_property
    def _parameters(self) -> dict[str, Any]:
        schema = dict(self._adapter.json_schema())
        schema.pop("title", None)
        notes = _argument_notes(inspect.getdoc(self.function) or "")
        properties = schema.get("properties") or {}
        for name, prop in properties.items():
            if name in notes and "description" not in prop:
                prop["description"] = notes[name]
            prop.pop("title", None)
        return schema

    def validate(self, data: Any) -> dict[str, Any]:
        """The model's input as keyword arguments of the function; ``InvalidToolInput`` if it does not fit."""
        try:
            arguments: dict[str, Any] = self._adapter.validate_python(data if data is not None else {})
            return arguments
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise InvalidToolInput(f"Invalid input for {self.name}: {problems}.") from None


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool = False,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool = False,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a typed function (sync or async) a tool: ``@streaming.tool``, or with options,
    ``@streaming.tool(needs_approval=True, timeout=10)``.

    ``needs_approval``: the call waits for the user's answer before it runs. ``timeout``: seconds
    (default ``STREAMING["TOOL_TIMEOUT"]``).
    """

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, needs_approval=needs_approval, timeout=timeout)

    return make if function is None else make(function)


def as_tool(value: object) -> Tool:
    """A ``Tool``, or a plain function made one (``STREAMING["TOOLS"]`` may list either)."""
    if isinstance(value, Tool):
        return value
    if inspect.isfunction(value):
        return Tool(value)
    raise TypeError(f"{value!r} is not a function or a @streaming.tool.")


def _input_signature(function: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """A function of the tool's input parameters (not ``user``) that returns its arguments: what
    ``TypeAdapter`` validates and describes. Annotations are resolved in the tool's own module."""
    hints = typing.get_type_hints(function, include_extras=True)
    signature = inspect.signature(function)
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == USER_PARAMETER:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{function.__name__}: a tool takes named parameters, not *args or **kwargs.")
        if parameter.name not in hints:
            raise TypeError(f"{function.__name__}: the parameter {parameter.name!r} has no type annotation.")
        annotation = hints[parameter.name]
        parameters.append(parameter.replace(annotation=annotation, kind=parameter.KEYWORD_ONLY))

    def arguments(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    arguments.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=inspect.Signature.empty
    )
    arguments.__annotations__ = {p.name: p.annotation for p in parameters}
    arguments.__name__ = arguments.__qualname__ = function.__name__
    return arguments


def _argument_notes(doc: str) -> dict[str, str]:
    """``name: description`` lines of a Google-style ``Args:`` section."""
    notes: dict[str, str] = {}
    lines = doc.splitlines()
    inside = False
    for line in lines:
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            inside = True
            continue
        if inside:
            if line and not line[0].isspace():
                break
            found = _ARG_LINE.match(line)
            if found:
                notes[found.group(1).lstrip("*")] = found.group(2).strip()
    return notes
