"""A second stack on the ports of a running one refuses to start (it would use the first one's stores)."""

import pytest

from object_challenge.dev.devstack import Stack


def test_a_second_stack_on_taken_ports_refuses_to_start_and_names_them(stack, tmp_path):
    second = Stack(env=dict(stack.base_env), var_dir=tmp_path / "var", mongo_file=False, quiet=True, workers=0)
    with pytest.raises(RuntimeError) as refused:
        second.start()
    message = str(refused.value)
    assert f"{stack.settings['GATEWAY_PORT']} (the gateway (GATEWAY_PORT))" in message
    assert "REDIS_PORT" in message and "MONGO_PORT" in message
    assert second.processes == []  # nothing was started
    assert stack.dead() == []  # and the running stack is untouched
