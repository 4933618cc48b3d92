# The two commands of the README: `make run` and `make test` (SPEC D1, D2).
SWIFT ?= swift

.PHONY: run test deps build clean check-c-layers ansible-collection

run:
	scripts/run.sh

deps:
	scripts/install-deps.sh

build: deps
	$(SWIFT) build

# The tests also need promtool (Debian's prometheus) to check the metrics format, and Debian's
# chromium, chromium-driver and python3-selenium to drive the web console in a real browser, and
# tmux to drive `luaexec repl` and `login` in a real terminal.
test: check-c-layers build
	scripts/install-deps.sh prometheus chromium chromium-driver python3-selenium tmux
	scripts/install-ansible.sh >/dev/null
	SWIFT=$(SWIFT) scripts/build-tests.sh
	LUAEXEC_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(SWIFT) test

# CLuaSupport's files include only the headers of layers below them (docs/architecture.md).
check-c-layers:
	scripts/check-c-layers.sh

# The Ansible collection luaexec.appliance (SPEC O9), as .build/ansible/luaexec-appliance-*.tar.gz;
# ansible-galaxy from the pinned venv scripts/install-ansible.sh makes.
ansible-collection:
	"$$(scripts/install-ansible.sh)/ansible-galaxy" collection build ansible --output-path .build/ansible --force

clean:
	rm -rf .build .run

# luaexec against its peers; rewrites BENCHMARKS.md (about 20 minutes). bench/README.md has
# each benchmark and how to run it alone.
.PHONY: bench
bench:
	bench/run.sh

# The Debian package (SPEC O6), and its proof: installed into a fresh Debian 12 root.
.PHONY: deb test-package
deb:
	packaging/build-deb.sh

test-package: deb
	packaging/test-package.sh
