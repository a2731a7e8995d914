"""``@streaming.tool``: what the model is told of a function (its name, description and input schema,
from the signature and docstring through pydantic), what it may send, and the system checks that report
a ``TOOLS`` setting the app cannot use."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

import streaming
from streaming.checks import check_streaming_settings
from streaming.tools.definition import InvalidToolInput, Tool
from streaming.tools.registry import tools_for

DEMO = {"BACKEND": "streaming.providers.demo.DemoProvider"}


@streaming.tool
def find_orders(
    customer: str,
    status: Literal["open", "shipped"] = "open",
    limit: Annotated[int, Field(ge=1, le=50, description="How many, at most.")] = 10,
    *,
    user: Any,
) -> list[dict[str, Any]]:
    """Find the user's orders of a customer.

    A second paragraph that the model is not told.

    Args:
        customer: The customer's name, or part of it.
    """
    return [{"customer": customer, "status": status, "limit": limit, "user": user}]


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    assert isinstance(find_orders, Tool)
    assert find_orders.name == "find_orders"
    assert find_orders.description == "Find the user's orders of a customer."
    assert find_orders.parameters() == {
        "type": "object",
        "properties": {
            "customer": {"type": "string", "description": "The customer's name, or part of it."},
            "status": {"enum": ["open", "shipped"], "type": "string", "default": "open"},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "default": 10,
                "description": "How many, at most.",
            },
        },
        "required": ["customer"],
        "additionalProperties": False,
    }
    # The requesting user is the app's to give, never the model's: it is not in the schema.
    assert "user" not in find_orders.parameters()["properties"]


def test_the_model_input_is_validated_by_the_same_schema() -> None:
    assert find_orders.validate({"customer": "Ada"}) == {"customer": "Ada", "status": "open", "limit": 10}
    with pytest.raises(InvalidToolInput) as refused:
        find_orders.validate({"customer": "Ada", "limit": 500, "user": "someone else"})
    assert str(refused.value) == (
        "Invalid input for find_orders: limit: Input should be less than or equal to 50; "
        "user: Unexpected keyword argument."
    )


def test_a_tool_is_still_the_function() -> None:
    assert find_orders("Ada", user="alice") == [
        {"customer": "Ada", "status": "open", "limit": 10, "user": "alice"}
    ]


def test_options_name_the_tool_and_ask_for_approval() -> None:
    @streaming.tool(name="wipe", description="Delete everything.", needs_approval=True, timeout=2)
    async def wipe_all() -> None:
        return None

    assert (wipe_all.name, wipe_all.description, wipe_all.needs_approval, wipe_all.timeout) == (
        "wipe",
        "Delete everything.",
        True,
        2,
    )
    assert wipe_all.is_async
    assert wipe_all.parameters() == {"type": "object", "properties": {}, "additionalProperties": False}


def ids(settings: Any, tools: Any, **extra: Any) -> list[str]:
    settings.STREAMING = {"PROVIDERS": {"demo": DEMO}, "MODELS": ["demo:echo"], "TOOLS": tools, **extra}
    return [str(message.id) for message in check_streaming_settings()]


def test_the_demo_projects_tools_pass_the_checks(settings: Any) -> None:
    assert ids(settings, ["project.tools.current_time", "project.tools.search_conversations"]) == []
    assert ids(settings, {"*": ["tests.example_tools.add"], "demo:echo": ["tests.example_tools.shout"]}) == []


@pytest.mark.parametrize(
    "tools",
    [
        ["tests.example_tools.no_such_tool"],  # cannot be imported
        ["tests.test_tool_definitions.DEMO"],  # not a function
        ["tests.test_tool_definitions.untyped"],  # cannot be described
        ["tests.test_tool_definitions.takes_anything"],
        {"openai:gpt-4.1-mini": ["tests.example_tools.add"]},  # a model that is not configured
        "tests.example_tools.add",  # not a list
    ],
)
def test_e008_a_tool_that_cannot_be_used(settings: Any, tools: Any) -> None:
    assert ids(settings, tools) == ["streaming.E008"]


def untyped(query):  # type: ignore[no-untyped-def]
    """No annotation: no schema."""
    return query


def takes_anything(**kwargs: Any) -> None:
    """Nothing to describe."""


@pytest.mark.parametrize(
    "key, value", [("MAX_STEPS", 0), ("TOOL_TIMEOUT", "soon"), ("TOOL_OUTPUT_MAX_CHARS", -1)]
)
def test_e009_limits_of_tool_calls(settings: Any, key: str, value: Any) -> None:
    assert ids(settings, [], **{key: value}) == ["streaming.E009"]


def test_each_model_gets_the_tools_for_all_and_its_own(settings: Any) -> None:
    settings.STREAMING = {
        "PROVIDERS": {"demo": DEMO},
        "MODELS": ["demo:echo", "demo:other"],
        "TOOLS": {
            "*": ["tests.example_tools.add"],
            "demo:other": ["tests.example_tools.shout", "nope.missing"],
        },
    }
    assert [t.name for t in tools_for("demo:echo")] == ["add"]
    assert [t.name for t in tools_for("demo:other")] == ["add", "shout"]  # (the broken one is left out)
