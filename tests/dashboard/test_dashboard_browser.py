"""The operator dashboard in a real (headless) Chromium, through the gateway."""

import uuid

import pytest
import requests
from helpers import auth, create_puzzle, wait_until
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By

XSS_TITLE = "<img src=x onerror=alert(1)>"


def login(driver, url, token):
    """Open ``url`` with ``token`` already given for the tab (sessionStorage)."""
    driver.get(url)
    driver.execute_script("sessionStorage.setItem('oc.token', arguments[0])", token)
    driver.refresh()


def login_form(driver):
    form = driver.find_element(By.ID, "login")
    return form if form.is_displayed() else None


def buttons(driver, label):
    return [b for b in driver.find_elements(By.CSS_SELECTOR, "main button") if b.text == label]


def text_of(driver, css="main"):
    """The text of the first match, or "" when none (or when the page re-rendered it meanwhile)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:  # re-rendered between the find and the read: wait_until asks again
        return ""


def attribute_of(driver, css, name):
    """An attribute of the first match, or "" when none (or when re-rendered meanwhile)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return (found[0].get_attribute(name) or "") if found else ""
    except StaleElementReferenceException:
        return ""


def row_text(driver, needle):
    """The text of the first table row holding ``needle`` ("" when none, or when re-rendered meanwhile)."""
    try:
        return next((r.text for r in driver.find_elements(By.CSS_SELECTOR, "main tbody tr") if needle in r.text), "")
    except StaleElementReferenceException:
        return ""


def no_dialog(driver):
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    alert.dismiss()
    return False


def enqueue(stack, title, queue, token="token_1"):
    answer = requests.post(
        f"{stack.url}/newapi/queue",
        params={"queue": queue},
        headers=auth(token),
        json={"job_title": title, "tasks": [{"module": "echo", "data": {"say": "hi"}}]},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["job_id"]


def test_dashboard_is_a_static_shell_with_a_strict_csp(stack):
    answer = requests.get(f"{stack.url}/dashboard/", timeout=30)  # the session's first request on a loaded machine
    assert answer.status_code == 200
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in answer.text  # no inline script: every script is a file
    script = requests.get(f"{stack.url}/dashboard/static/dashboard.js", timeout=10)
    assert script.status_code == 200 and "innerHTML" not in script.text
    # the JSON it reads is for admins only
    overview = f"{stack.url}/newapi/dashboard/overview"
    assert requests.get(overview, headers=auth("token_1"), timeout=10).status_code == 403
    assert requests.get(overview, timeout=10).status_code == 401


def test_dashboard_refuses_a_user_token_and_opens_with_the_admin_token(stack, browser, shot):
    browser.get(f"{stack.url}/dashboard/")
    form = wait_until(lambda: login_form(browser))
    form.find_element(By.ID, "token-input").send_keys("token_1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    refusal = wait_until(lambda: browser.find_elements(By.ID, "refusal"), message="the refusal")[0]
    assert "Operators only" in refusal.text and "role is user" in refusal.text
    assert not browser.find_element(By.ID, "nav").is_displayed()
    shot(browser, "dashboard_refused")

    browser.find_element(By.ID, "logout").click()
    form = wait_until(lambda: login_form(browser))
    form.find_element(By.ID, "token-input").send_keys("token_admin")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "Queue depths" in text_of(browser), message="the overview")
    assert browser.find_element(By.ID, "nav").is_displayed()
    wait_until(lambda: "redis: ok" in text_of(browser) and "api: ok" in text_of(browser), message="store health")
    # rates from the gateway's counters, once two refreshes have read them
    wait_until(lambda: "Refusals (gateway)" in text_of(browser), timeout=10, message="the gateway's rates")
    shot(browser, "dashboard_overview")


def test_an_enqueued_job_appears_on_the_queue_page_and_its_title_is_text(stack, browser, shot):
    queue = f"dash-{uuid.uuid4().hex[:8]}"  # nobody polls it: the jobs wait
    plain = enqueue(stack, "plain job", queue)
    hostile = enqueue(stack, XSS_TITLE, queue)
    login(browser, f"{stack.url}/dashboard/#/queue/{queue}/0", "token_admin")
    wait_until(lambda: XSS_TITLE in text_of(browser), message="the job title shown as text")
    page = text_of(browser)
    assert "plain job" in page and plain[:8] in page and hostile[:8] in page
    assert "waiting 2" in page
    # shown, not run: no <img> was made from the title, and no dialog opened
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    assert no_dialog(browser)
    shot(browser, "dashboard_queue")

    # and on the job's own page
    browser.get(f"{stack.url}/dashboard/#/job/{hostile}")
    wait_until(lambda: "History" in text_of(browser) and XSS_TITLE in text_of(browser, ".job-title"))
    assert not browser.find_elements(By.CSS_SELECTOR, "main img") and no_dialog(browser)


def test_disable_and_enable_a_queue_from_the_page(stack, browser):
    queue = f"dash-{uuid.uuid4().hex[:8]}"
    enqueue(stack, "waits", queue)
    login(browser, f"{stack.url}/dashboard/#/queue/{queue}/0", "token_admin")

    def click(label):
        try:
            found = buttons(browser, label)
            if found:
                found[0].click()
            return bool(found)
        except StaleElementReferenceException:  # the page refreshed under the mouse
            return False

    wait_until(lambda: click("disable"), message="the disable button")

    def attribute():
        answer = requests.get(
            f"{stack.url}/newapi/queue", params={"queue": queue, "limit": 1}, headers=auth("token_admin"), timeout=10
        )
        return answer.json()["attributes"].get("disabled")

    wait_until(lambda: attribute() is True, message="the queue disabled")
    wait_until(lambda: click("enable"), message="the enable button")
    wait_until(lambda: attribute() is False, message="the queue enabled again")


def test_cancel_from_the_job_page_ends_a_running_job(stack, browser, shot):
    queue = f"dash-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, "to be cancelled", queue)
    probe = requests.post(f"{stack.url}/newapi/jobs/{job_id}/cancel", headers=auth("token_worker"), timeout=10)
    if probe.status_code in (404, 405) and probe.json().get("error") != "job_not_found":
        pytest.skip("this tree has no POST /jobs/<id>/cancel yet")
    polled = requests.get(
        f"{stack.url}/newapi/queue/poll",
        params={"queue": queue, "worker_id": "dash-w"},
        headers=auth("token_worker"),
        timeout=10,
    )
    assert polled.status_code == 200, polled.text
    login(browser, f"{stack.url}/dashboard/#/job/{job_id}", "token_admin")
    wait_until(lambda: buttons(browser, "cancel"))[0].click()

    def state():
        return requests.get(f"{stack.url}/newapi/jobs/{job_id}", headers=auth("token_admin"), timeout=10).json()

    wait_until(lambda: state()["state"] == "cancelled" or state().get("cancel_requested"), message="the job cancelled")
    shot(browser, "dashboard_job_cancelled")


def test_job_events_appear_on_the_job_page_within_a_second(stack, browser):
    queue = f"dash-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, "with events", queue)
    requests.get(
        f"{stack.url}/newapi/queue/poll",
        params={"queue": queue, "worker_id": "dash-e"},
        headers=auth("token_worker"),
        timeout=10,
    )
    login(browser, f"{stack.url}/dashboard/#/job/{job_id}", "token_admin")
    connecting = ("", "connecting to the event stream…")
    state = wait_until(lambda: (s := text_of(browser, "#events-state")) not in connecting and s)
    if "no job event stream" in state:
        pytest.skip("this tree has no job event stream yet")
    wait_until(lambda: text_of(browser, "#events-state") == "live", message="the event stream open")
    posted = requests.post(
        f"{stack.url}/newapi/jobs/{job_id}/events",
        params={"worker_id": "dash-e"},
        headers=auth("token_worker"),
        json={"attempt": 1, "events": [{"type": "stdout", "data": "hello from the test"}]},
        timeout=10,
    )
    assert posted.status_code in (200, 201, 202), posted.text
    wait_until(lambda: "hello from the test" in text_of(browser, "#events"), timeout=1.0, message="the event shown")


def test_puzzles_page_lists_puzzles_paginated(stack, browser):
    login(browser, f"{stack.url}/dashboard/#/puzzles", "token_admin")
    wait_until(lambda: "Puzzles" in text_of(browser, "main h1"))
    answer = requests.get(
        f"{stack.url}/newapi/dashboard/puzzles", params={"limit": 101}, headers=auth("token_admin"), timeout=10
    )
    assert answer.status_code == 400  # a page is at most 100 rows


def test_a_finished_run_shows_its_verdict_on_the_runs_page(stack, browser, shot):
    made = requests.post(
        f"{stack.url}/newapi/runs",
        headers=auth("token_1"),
        json={"language": "python", "files": [{"name": "main.py", "content": "print('hi from the dashboard test')\n"}]},
        timeout=10,
    )
    assert made.status_code in (200, 201, 202), made.text
    run_id = made.json()["run_id"]

    def finished():
        answer = requests.get(f"{stack.url}/newapi/runs/{run_id}", headers=auth("token_1"), timeout=10).json()
        return answer["state"] == "finished" and answer

    run = wait_until(finished, timeout=60, message="the run finished")
    login(browser, f"{stack.url}/dashboard/#/runs", "token_admin")
    wait_until(lambda: run_id[:8] in text_of(browser), message="the run listed")
    row = wait_until(lambda: row_text(browser, run_id[:8]), message="the run's row")
    assert run["verdict"] in row and "python" in row
    shot(browser, "dashboard_runs")
    # its output is on the job page (the job's events)
    browser.get(f"{stack.url}/dashboard/#/job/{run_id}")
    wait_until(lambda: "hi from the dashboard test" in text_of(browser, "#events"), message="the run's output")


def test_a_campaign_shows_its_progress_bar(stack, browser, shot):
    name = f"dash-{uuid.uuid4().hex[:6]}"
    made = requests.post(
        f"{stack.url}/newapi/campaigns",
        headers=auth("token_admin"),
        json={"name": name, "source": "players", "range": {"start": 1, "end": 40}, "batch_size": 10},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    campaign_id = made.json()["campaign_id"]
    started = requests.post(
        f"{stack.url}/newapi/campaigns/{campaign_id}/passes", headers=auth("token_admin"), timeout=10
    )
    assert started.status_code == 201, started.text
    login(browser, f"{stack.url}/dashboard/#/campaigns", "token_admin")
    card = f'section[data-campaign="{campaign_id}"]'
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f"{card} progress"), message="the campaign's bar")
    # make run (and the test stack) start workers on the campaigns queue and the player API
    # stand-in: the pass runs to its end
    percent = f"{card} .pct"
    wait_until(lambda: text_of(browser, percent).strip() == "100%", timeout=90, message="the bar at 100%")
    assert name in text_of(browser, card)
    shot(browser, "dashboard_campaigns")


def test_a_campaign_shows_its_ids_per_second_chart_once_a_pass_has_run(stack, browser, shot):
    name = f"rate-{uuid.uuid4().hex[:6]}"
    made = requests.post(
        f"{stack.url}/newapi/campaigns",
        headers=auth("token_admin"),
        json={"name": name, "source": "players", "range": {"start": 1, "end": 30}, "batch_size": 10},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    campaign_id = made.json()["campaign_id"]
    rate_url = f"{stack.url}/newapi/dashboard/campaigns/{campaign_id}/rate"
    assert requests.get(rate_url, headers=auth("token_admin"), timeout=10).json()["samples"] == []  # no pass yet
    assert requests.get(rate_url, headers=auth("token_1"), timeout=10).status_code == 403
    started = requests.post(
        f"{stack.url}/newapi/campaigns/{campaign_id}/passes", headers=auth("token_admin"), timeout=10
    )
    assert started.status_code == 201, started.text

    def pass_done():
        answer = requests.get(f"{stack.url}/newapi/campaigns/{campaign_id}", headers=auth("token_admin"), timeout=10)
        return answer.json()["state"] == "done"

    wait_until(pass_done, timeout=90, message="the pass done")
    rate = requests.get(rate_url, headers=auth("token_admin"), timeout=10).json()
    assert len(rate["samples"]) == 30
    # every id of the pass is in one slice or another
    assert round(sum(s["ids_per_second"] * rate["bin_s"] for s in rate["samples"])) == 30

    login(browser, f"{stack.url}/dashboard/#/campaigns", "token_admin")
    line = f'section[data-campaign="{campaign_id}"] svg.rate-chart polyline'
    points = wait_until(lambda: attribute_of(browser, line, "points"), timeout=20, message="the chart drawn")
    heights = [float(point.split(",")[1]) for point in points.split()]
    assert len(heights) == 30
    assert min(heights) < max(heights)  # a line that rises where batches were done, not a flat zero
    shot(browser, "dashboard_campaign_rate")


def test_the_puzzles_page_shows_live_players(stack, browser, second_browser):
    from test_puzzle_browser import open_puzzle

    puzzle_id = create_puzzle(stack, 2, 2, 600, 400)
    login(browser, f"{stack.url}/dashboard/#/puzzles", "token_admin")
    players = f'span.players[data-puzzle="{puzzle_id}"]'  # the newest puzzle: on the first page
    wait_until(lambda: text_of(browser, players) == "0", timeout=10, message="no live player yet")

    open_puzzle(second_browser, stack, puzzle_id, "token_2")  # a player's page follows the puzzle's stream
    wait_until(lambda: text_of(browser, players) == "1", timeout=15, message="one live player")
    second_browser.get("about:blank")  # the player leaves: the stream closes
    wait_until(lambda: text_of(browser, players) == "0", timeout=20, message="the player gone")


def test_the_queue_page_stays_usable_with_10000_jobs_waiting(stack, browser, shot):
    queue = f"big-{uuid.uuid4().hex[:8]}"  # nobody polls it
    job = {"job_title": "bulk", "tasks": [{"module": "echo", "data": {}}]}
    try:
        for chunk in range(10):  # the bulk limit is 1,000 jobs a request (docs/jobs.md)
            answer = requests.post(
                f"{stack.url}/newapi/queue",
                params={"queue": queue},
                headers=auth("token_admin"),
                json={"jobs": [{**job, "job_title": f"bulk {chunk}-{i}"} for i in range(1000)]},
                timeout=60,
            )
            assert answer.status_code == 201 and answer.json()["count"] == 1000, answer.text[:300]

        page = requests.get(
            f"{stack.url}/newapi/dashboard/queues/{queue}", headers=auth("token_admin"), timeout=30
        ).json()
        assert page["waiting"]["total"] == 10_000
        assert len(page["waiting"]["jobs"]) == 25  # a page, never the whole list
        assert page["waiting"]["jobs"][0]["job_title"] == "bulk 0-0"
        url = f"{stack.url}/newapi/dashboard/queues/{queue}"
        too_many = requests.get(url, params={"limit": 101}, headers=auth("token_admin"), timeout=30)
        assert too_many.status_code == 400

        login(browser, f"{stack.url}/dashboard/#/queue/{queue}/0", "token_admin")
        wait_until(lambda: "waiting 10000" in text_of(browser), timeout=30, message="the queue page loaded")
        wait_until(lambda: "1–25 of 10000" in text_of(browser, "main .pager"), message="the pager")
        # the waiting page's rows, no more (the running table says "no running job")
        assert len(browser.find_elements(By.CSS_SELECTOR, "main tbody tr")) <= 25
        browser.get(f"{stack.url}/dashboard/#/queue/{queue}/9975")  # the last page, as its "last" link goes
        last = "9976–10000 of 10000"
        wait_until(lambda: last in text_of(browser, "main .pager"), timeout=30, message="the last page")
        wait_until(lambda: "bulk 9-999" in text_of(browser), message="the last job listed")
        shot(browser, "dashboard_queue_10000")
    finally:
        requests.delete(f"{stack.url}/newapi/queue", params={"queue": queue}, headers=auth("token_admin"), timeout=60)
