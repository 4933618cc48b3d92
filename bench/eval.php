<?php
// php-fpm contestant of `make bench`: evaluate the request body, as luaexec does with Lua.
echo eval(file_get_contents('php://input') . ';');
