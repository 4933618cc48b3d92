# luaexec: masks tokens in the lines of a web server's logs (SPEC T5: a token never appears in
# any log), for the lighttpd and Apache httpd sites, which pipe their logs through
# `sed -u -E -f mask-tokens.sed`; the nginx site masks in its log_format instead.
# Anything like a token (SPEC T3's prefix, in any case or percent-encoding) to the end of its
# characters, then any AuthToken= value (a mistyped token is a secret all the same).
s/(l|%4c|%6c)(x|%58|%78)(k|%4b|%6b)(_|%5f)[a-z0-9%]*/lxk_***/Ig
s/(a|%41|%61)(u|%55|%75)(t|%54|%74)(h|%48|%68)(t|%54|%74)(o|%4f|%6f)(k|%4b|%6b)(e|%45|%65)(n|%4e|%6e)=[^& ]*/AuthToken=***/Ig
