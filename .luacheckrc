-- luacheck config (make test runs `luacheck lua/ tests/lua`: tests/gateway/test_luacheck.py)
std = "luajit"
globals = { "ngx" } -- OpenResty's API table (ngx.status, ngx.ctx, ngx.var are assigned)
max_line_length = 120
