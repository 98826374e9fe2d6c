"""A tiny nginx that runs the gateway's Lua modules on case tables (no stack needed)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from object_challenge.dev.devstores import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]

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

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def error_log(self):
        return (self.tmp / "error.log").read_text()
