"""The API documentation in headless Chromium with every request off this machine cut: Swagger UI at /docs
and ReDoc at /redoc each show every operation of the OpenAPI document, and neither page asks for anything
from another host."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.fixtures.service import RunningService

pytestmark = pytest.mark.browser


def operation_ids(service: RunningService) -> list[str]:
    document = httpx.get(f"{service.url}/openapi.json", timeout=10).json()
    return [operation["operationId"] for item in document["paths"].values() for operation in item.values()]


def cut_off_from_the_network(page: Page) -> list[str]:
    """Lets requests to 127.0.0.1 through and aborts every other; returns the list of those it aborted."""
    refused: list[str] = []

    def route(intercepted: Route) -> None:
        if urlsplit(intercepted.request.url).hostname == "127.0.0.1":
            intercepted.continue_()
        else:
            refused.append(intercepted.request.url)
            intercepted.abort()

    page.context.route("**/*", route)
    return refused


def test_swagger_ui_shows_every_operation_offline(sqlite_service: RunningService, page: Page) -> None:
    refused = cut_off_from_the_network(page)
    operations = operation_ids(sqlite_service)
    page.goto(f"{sqlite_service.url}/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations))
    submit = page.locator(".opblock-post", has=page.locator(".opblock-summary-path", has_text="/v1/jobs"))
    expect(submit.first).to_be_visible()
    assert refused == []


def test_redoc_shows_every_operation_offline(sqlite_service: RunningService, page: Page) -> None:
    refused = cut_off_from_the_network(page)
    operations = operation_ids(sqlite_service)
    page.goto(f"{sqlite_service.url}/redoc")
    # Each operation is a section of its tag's part of the page.
    for operation_id in operations:
        expect(page.locator(f'[id$="operation/{operation_id}"]').first).to_be_attached()
    assert refused == []
