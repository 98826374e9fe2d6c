"""A tiny nginx that runs the gateway's Lua modules on case tables (no stack needed).

Its endpoints are the functions of tests/lua/harness.lua: ``harness.run("keys", payload)``
POSTs the payload as JSON and returns the decoded answer.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from object_challenge.core import config
from object_challenge.dev.devstores import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]

CONF = """\
{run_as}load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    lua_package_path "{root}/lua/?.lua;{root}/tests/lua/?.lua;/usr/share/lua/5.1/?.lua;;";
    lua_shared_dict oc_limits 1m;
    lua_shared_dict oc_auth 1m;
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 8m;
    client_body_buffer_size 8m;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/(\\w+)$ {{
            content_by_lua_block {{ require("harness")[ngx.var[1]]() }}
        }}
    }}
}}
"""


def rendered_settings(environ=None):
    """The settings nginx/render.py puts into the conf for ``environ`` (the testing config)."""
    spec = importlib.util.spec_from_file_location("_oc_render", ROOT / "nginx" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return render.lua_settings(config.load("testing", environ or {}))


class LuaHarness:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="oc-lua-harness-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        conf = self.tmp / "nginx.conf"
        run_as = "user root;\n" if os.geteuid() == 0 else ""  # as nginx/render.py: workers must read the checkout
        conf.write_text(CONF.format(tmp=self.tmp, root=ROOT, port=self.port, run_as=run_as))
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.tmp), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "stderr.log", "wb"),
        )
        wait_for_port(self.port, process=self.process, what="lua harness nginx")
        return self

    def run(self, what, payload):
        """POST ``payload`` (JSON, or text as it is) to harness.lua's ``what``; the decoded answer."""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        answer = requests.post(f"{self.url}/{what}", data=data, timeout=10)
        assert answer.status_code == 200, self.error_log()[-2000:]
        return answer.json()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def error_log(self):
        return (self.tmp / "error.log").read_text()
