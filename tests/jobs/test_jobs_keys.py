"""Redis keys: keys.py and the Lua scripts (lib.lua) build the same names."""

from object_challenge.jobs import keys
from object_challenge.jobs.queue import HERE

PROBE = """
return {job_key(ARGV[2]), queue_key(ARGV[3]), worker_jobs_key(ARGV[4]), LEASES, FINISHED, WORKERS,
        delayed_key(ARGV[3]), modsets_key(ARGV[3]), WORKER_MODULES}
"""


def test_lua_and_python_build_the_same_keys(redis):
    script = redis.register_script((HERE / "lib.lua").read_text() + PROBE)
    lua = script(keys=[], args=[keys.PREFIX, "job-1", "q1", "w1"])
    assert lua == [
        keys.job("job-1"),
        keys.queue("q1"),
        keys.worker_jobs("w1"),
        keys.LEASES,
        keys.FINISHED,
        keys.WORKERS,
        keys.delayed("q1"),
        keys.queue_modules("q1"),
        keys.WORKER_MODULES,
    ]


def test_every_key_is_under_oc_jobs():
    built = [
        keys.queue("q"),
        keys.queue_attributes("q"),
        keys.job("j"),
        keys.worker_status("w"),
        keys.worker_attributes("w"),
        keys.worker_jobs("w"),
        keys.QUEUES,
        keys.LEASES,
        keys.FINISHED,
        keys.WORKERS,
        keys.delayed("q"),
        keys.queue_modules("q"),
        keys.WORKER_MODULES,
    ]
    assert all(k.startswith("oc:jobs:") for k in built) and len(set(built)) == len(built)


def test_every_script_starts_with_its_keys_argv_and_returns():
    for path in HERE.glob("*.lua"):
        if path.name == "lib.lua":
            continue
        head = path.read_text().split("\n\n")[0]
        assert head.startswith(f"-- {path.name}:"), path.name
        assert "ARGV[1]" in head and "returns" in head, path.name
