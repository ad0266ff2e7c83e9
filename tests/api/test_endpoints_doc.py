"""docs/endpoints.md is generated (``hsmgate docs endpoints``) from the routes the app mounts and the
reference's endpoint list (``src/hsmgate/commands/tsb_endpoints.toml``): the committed page must be
exactly what the generator makes, and the generator must refuse a list that disagrees with the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import Mount, Route
from typer.testing import CliRunner

from hsmgate.api.route_table import MountedRoute, mounted_routes
from hsmgate.cli import cli
from hsmgate.commands.docs import EndpointDrift, load_reference, render_endpoints
from tests.helpers import LiveServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "endpoints.md"


@pytest.fixture(scope="module")
def routes(soft_server: LiveServer) -> list[MountedRoute]:
    return mounted_routes(soft_server.app)


def test_the_committed_page_is_the_generated_one(routes: list[MountedRoute]) -> None:
    generated = render_endpoints(routes, load_reference())
    assert PAGE.read_text(encoding="utf-8") == generated, \
        "docs/endpoints.md is stale: run `hsmgate docs endpoints` and commit the result"


def test_the_command_checks_the_page(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["docs", "endpoints", "--check", "--output", str(PAGE)])
    assert result.exit_code == 0, result.output
    stale = tmp_path / "endpoints.md"
    stale.write_text(PAGE.read_text(encoding="utf-8").replace("served", "served?", 1), encoding="utf-8")
    assert runner.invoke(cli, ["docs", "endpoints", "--check", "--output", str(stale)]).exit_code == 1
    written = tmp_path / "written.md"
    assert runner.invoke(cli, ["docs", "endpoints", "--output", str(written)]).exit_code == 0
    assert written.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")


def test_every_reference_endpoint_has_a_status_and_every_route_a_row(routes: list[MountedRoute]) -> None:
    page = render_endpoints(routes, load_reference())
    for entry in load_reference().endpoints:
        assert f"| `{entry.method}` | `{entry.path}` |" in page
    for route in routes:
        assert f"| `{route.method}` | `{route.path}` |" in page or any(
            entry.matches(route) for entry in load_reference().endpoints)


def test_the_generator_refuses_a_list_that_disagrees_with_the_app(routes: list[MountedRoute]) -> None:
    reference = load_reference()
    without_sign = [route for route in routes if route.path != "/v1/synchronousSign"]
    with pytest.raises(EndpointDrift, match="POST /v1/synchronousSign is listed as served"):
        render_endpoints(without_sign, reference)
    without_file_encrypt = [route for route in routes if route.path != "/v1/fileEncrypt"]
    with pytest.raises(EndpointDrift, match="POST /v1/fileEncrypt is listed as served"):
        render_endpoints(without_file_encrypt, reference)
    attestation_item = MountedRoute("GET", "/v1/attestation/{entry}", True, ("Keys",), "one attestation")
    with pytest.raises(EndpointDrift, match=r"/v1/attestation/\*\* is listed as unserved"):
        render_endpoints([*routes, attestation_item], reference)
    without_log_records = [route for route in routes if route.path != "/v1/hsm/log/records"]
    with pytest.raises(EndpointDrift, match=r"/v1/hsm/log/\*\* is listed as served"):
        render_endpoints(without_log_records, reference)
    without_refusal = [route for route in routes if route.path != "/v1/key/changeAttributes"]
    with pytest.raises(EndpointDrift, match="changeAttributes is listed as refused"):
        render_endpoints(without_refusal, reference)


def test_loading_refuses_a_malformed_list(tmp_path: Path) -> None:
    data = tmp_path / "list.toml"
    entry = '[[endpoint]]\ntag = "Keys"\nmethod = "GET"\npath = "/v1/key"\nsource = "x"\n'
    data.write_text('tags = ["Keys"]\n' + entry + entry)
    with pytest.raises(EndpointDrift, match="listed twice"):
        load_reference(data)
    data.write_text('tags = ["Keys"]\n' + entry.replace('"Keys"', '"Nope"'))
    with pytest.raises(EndpointDrift, match="has tag"):
        load_reference(data)
    data.write_text('tags = ["Keys"]\n' + entry + 'colour = "red"\n')
    with pytest.raises(EndpointDrift, match="unknown fields"):
        load_reference(data)


def test_the_walk_goes_through_included_routers_and_mounts() -> None:
    inner = APIRouter(tags=["Inner"])

    @inner.get("/leaf", summary="a leaf")
    def leaf() -> dict[str, str]:  # pragma: no cover
        return {}

    outer = APIRouter()
    outer.include_router(inner, prefix="/inner")

    @outer.post("/direct", status_code=201, deprecated=True)
    def direct() -> dict[str, str]:  # pragma: no cover
        return {}

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(outer, prefix="/v9")
    app.router.routes.append(Mount("/static", routes=[Route("/file", lambda request: None)]))
    found = {(route.method, route.path): route for route in mounted_routes(app)}
    assert set(found) == {("GET", "/v9/inner/leaf"), ("POST", "/v9/direct"), ("GET", "/static/file")}
    assert found[("GET", "/v9/inner/leaf")].tags == ("Inner",) and found[("GET", "/v9/inner/leaf")].api
    assert found[("POST", "/v9/direct")].status_code == 201 and found[("POST", "/v9/direct")].deprecated
    assert not found[("GET", "/static/file")].api
