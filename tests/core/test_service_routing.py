"""No HTML redirects from the services; OPTIONS answers 204 with Allow."""

import pytest
from helpers import auth


@pytest.mark.parametrize(
    "path",
    ["/newapi/puzzle/1", "/newapi/puzzle//1/", "//newapi/whoami", "/newapi/whoami/", "/newapi/queue/poll/"],
)
def test_no_redirect_for_a_missing_slash_or_double_slash(client, path):
    answer = client.get(path, headers=auth("token_1"), base_url="http://localhost:8080")
    assert answer.status_code not in (301, 302, 307, 308), answer.headers.get("Location")
    assert answer.content_type == "application/json", answer.get_data(as_text=True)[:200]


def test_a_route_without_its_trailing_slash_is_served(client):
    assert client.get("/newapi/puzzle/1", headers=auth("token_1")).get_json()["error"] == "puzzle_not_found"
    assert client.get("/newapi/whoami/", headers=auth("token_1")).status_code == 200


@pytest.mark.parametrize("path", ["/bucket", "/newapi/puzzle/", "/newapi/puzzle/1/", "/newapi/queue"])
def test_options_is_204_with_allow(client, path):
    answer = client.options(path)
    assert answer.status_code == 204
    assert answer.headers["Allow"] and "OPTIONS" in answer.headers["Allow"]
    assert answer.get_data() == b""


def test_the_api_index_answers_and_its_get_links_answer(client):
    index = client.get("/newapi/")
    assert index.status_code == 200 and index.get_json()["links"]
    for link in index.get_json()["links"].values():
        if link["method"] != "GET" or "{" in link["href"]:
            continue
        answer = client.get(link["href"], headers=auth("token_1"))
        assert answer.status_code == 200, (link, answer.status_code)
