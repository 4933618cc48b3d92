import Foundation
import Testing

/// The Ansible collection `luaexec.appliance` (SPEC O9) run by real `ansible-core` (the version
/// scripts/install-ansible.sh pins, which `make test` runs first) against three real stacks at
/// once, over HTTPS with their keys pinned, the hosts read from the remotes `luaexec login`
/// saved. Serialized: the playbook runs build on each other (a first run changes, a second
/// does not), and the last stops a box.
@Suite("Ansible collection luaexec.appliance", .serialized)
struct AnsibleTests {
    static let boxes = (1...3).map { _ in try! Stack(settings: ["auth.failure_limit=1000000"], tcp: true) }
    static let names = ["box1", "box2", "box3"]
    static let venv = Stack.repository + "/.build/ansible-venv/bin"

    /// A controller: a home with the remotes file, the collection where Ansible finds it, and
    /// the inventory that reads the remotes.
    static let controller: String = {
        let home = NSTemporaryDirectory() + "luaexec-ansible-\(UUID().uuidString)"
        let collection = home + "/collections/ansible_collections/luaexec"
        try! FileManager.default.createDirectory(atPath: collection, withIntermediateDirectories: true)
        try! FileManager.default.copyItem(atPath: Stack.repository + "/ansible", toPath: collection + "/appliance")
        try! FileManager.default.createDirectory(atPath: home + "/inventory", withIntermediateDirectories: true)
        try! "plugin: luaexec.appliance.luaexec\n".write(
            toFile: home + "/inventory/luaexec.yml", atomically: true, encoding: .utf8)
        try! FileManager.default.createDirectory(atPath: home + "/secrets", withIntermediateDirectories: true)
        for (box, name) in zip(boxes, names) {
            let login = try! Stack.run(
                Stack.binDirectory + "/luaexec",
                [
                    "login", "https://127.0.0.1:\(box.httpsPort!)", "--name", name, "--fingerprint",
                    ClientTests.fingerprint,
                ],
                environment: environment(home).merging(["LUAEXEC_TOKEN": box.adminToken]) { $1 })
            precondition(login.status == 0, "luaexec login failed: \(login.stderr)")
        }
        return home
    }()

    static func environment(_ home: String) -> [String: String] {
        [
            "HOME": home, "XDG_CONFIG_HOME": home + "/config", "PATH": venv + ":/usr/bin:/bin",
            "ANSIBLE_COLLECTIONS_PATH": home + "/collections", "ANSIBLE_LOCAL_TEMP": home + "/tmp",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": venv + "/python", "ANSIBLE_FORKS": "3",
            "ANSIBLE_RETRY_FILES_ENABLED": "0", "LANG": "C.UTF-8",
        ]
    }

    /// `ansible-playbook PLAYBOOK` with the remotes inventory and `extra` arguments.
    static func playbook(_ name: String, _ extra: [String] = []) throws -> Stack.ProcessResult {
        guard FileManager.default.isExecutableFile(atPath: venv + "/ansible-playbook") else {
            throw StackError("no ansible-core in \(venv): run scripts/install-ansible.sh (make test does)")
        }
        return try Stack.run(
            venv + "/ansible-playbook",
            ["-i", controller + "/inventory/luaexec.yml", Stack.repository + "/ansible/tests/playbooks/" + name]
                + extra,
            environment: environment(controller))
    }

    /// PLAY RECAP's counters for `host`: `["ok": 3, "changed": 2, ...]`.
    static func recap(_ output: String, _ host: String) -> [String: Int] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix(host + " ") }) else { return [:] }
        var counters: [String: Int] = [:]
        for field in line.split(separator: " ") {
            let parts = field.split(separator: "=")
            if parts.count == 2, let value = Int(parts[1]) { counters[String(parts[0])] = value }
        }
        return counters
    }

    static let source = "-- the doorbell\nhttp.listen('doorbell', function() return 'ding' end)\n"

    static func rollout(_ source: String, seconds: Int, _ extra: [String] = []) throws -> Stack.ProcessResult {
        let file = controller + "/doorbell-\(UUID().uuidString).lua"
        try source.write(toFile: file, atomically: true, encoding: .utf8)
        return try playbook(
            "rollout.yml", ["-e", #"{"doorbell_src": "\#(file)", "ring_seconds": \#(seconds)}"#] + extra)
    }

    func scriptSHA(_ box: Stack) throws -> String? {
        let record = try box.request(
            "/api/v1/admin/scripts/doorbell.lua", token: box.adminToken, headers: ["Accept: application/json"])
        guard record.status == 200 else { return nil }
        let object = try JSONSerialization.jsonObject(with: Data(record.body)) as? [String: Any]
        return object?["sha256"] as? String
    }

    @Test("a first run changes every box, a second changes nothing")
    func idempotent() throws {
        let first = try Self.rollout(Self.source, seconds: 3)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        for (box, name) in zip(Self.boxes, Self.names) {
            #expect(
                Self.recap(first.stdout, name) == [
                    "ok": 4, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0,
                ])
            #expect(first.stdout.contains("\"msg\": \"\(name) rings for 3 s\""))
            #expect(try box.eval("return http ~= nil and config.get('doorbell.ring_seconds')").text == "3")
            #expect(try box.request("/api/v1/exec/doorbell", token: box.adminToken).text == "ding")
        }
        let second = try Self.rollout(Self.source, seconds: 3)
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        for name in Self.names { #expect(Self.recap(second.stdout, name)["changed"] == 0) }
    }

    @Test("a relative src is found in the playbook's files/, as docs/ansible.md runs it (after the first run: the same script and value), whatever the directory ansible runs in")
    func relativeSource() throws {
        // docs/ansible.md's layout: the playbook, and files/ beside it.
        let project = Self.controller + "/project-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: project + "/files", withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: Stack.repository + "/ansible/tests/playbooks/rollout.yml", toPath: project + "/rollout.yml")
        try Self.source.write(toFile: project + "/files/doorbell.lua", atomically: true, encoding: .utf8)
        try "return {changed = false, answer = 6 * 7}\n".write(
            toFile: project + "/files/ask.lua", atomically: true, encoding: .utf8)
        try """
            - hosts: luaexec
              gather_facts: false
              module_defaults:
                group/luaexec.appliance.luaexec:
                  url: "{{ luaexec_url }}"
                  token: "{{ luaexec_token }}"
                  pin: "{{ luaexec_pin }}"
              tasks:
                - luaexec.appliance.lua_exec:
                    src: files/ask.lua
                  register: asked
                - ansible.builtin.debug:
                    msg: "answer {{ asked.results[0].answer }}"
                - luaexec.appliance.lua_exec:
                    src: files/ask.lua
                  async: 30
                  poll: 1
                  register: later
                - ansible.builtin.debug:
                    msg: "later {{ later.results[0].answer }}"
            """.write(toFile: project + "/ask.yml", atomically: true, encoding: .utf8)
        func run(_ playbook: String, _ extra: [String]) throws -> Stack.ProcessResult {
            // async_status expands ~ as the real user's home, not this HOME: one directory for both.
            try Stack.run(
                Self.venv + "/ansible-playbook",
                ["-i", Self.controller + "/inventory/luaexec.yml", project + "/" + playbook] + extra,
                environment: Self.environment(Self.controller).merging(
                    ["ANSIBLE_ASYNC_DIR": Self.controller + "/async"]) { $1 })
        }
        let rolled = try run("rollout.yml", ["-e", #"{"doorbell_src": "files/doorbell.lua", "ring_seconds": 3}"#])
        #expect(rolled.status == 0, "\(rolled.stdout)\(rolled.stderr)")
        for (box, name) in zip(Self.boxes, Self.names) {
            #expect(Self.recap(rolled.stdout, name)["failed"] == 0, "\(rolled.stdout)")
            #expect(try box.request("/api/v1/exec/doorbell", token: box.adminToken).text == "ding")
        }
        let asked = try run("ask.yml", [])
        #expect(asked.status == 0, "\(asked.stdout)\(asked.stderr)")
        #expect(asked.stdout.components(separatedBy: "\"msg\": \"answer 42\"").count - 1 == Self.names.count, "\(asked.stdout)")
        // async as the module itself has it (the action plugin keeps it).
        #expect(asked.stdout.components(separatedBy: "\"msg\": \"later 42\"").count - 1 == Self.names.count, "\(asked.stdout)")
        let missing = try run("rollout.yml", ["-e", #"{"doorbell_src": "files/none.lua", "ring_seconds": 3}"#])
        #expect(missing.status != 0)
        #expect(missing.stdout.contains("cannot find src files/none.lua on the controller: a relative path is looked for in the role's and the playbook's files/ directories"), "\(missing.stdout)")
        #expect(!missing.stdout.contains("remote_src"), "\(missing.stdout)")
    }

    @Test("check mode with diff shows the script's change and changes nothing on the boxes")
    func checkMode() throws {
        let before = try Self.boxes.map(scriptSHA)
        let checked = try Self.rollout(Self.source + "-- louder\n", seconds: 5, ["--check", "--diff"])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        for name in Self.names {
            #expect(
                Self.recap(checked.stdout, name) == [
                    "ok": 3, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 1, "rescued": 0, "ignored": 0,
                ])
        }
        #expect(checked.stdout.contains("+-- louder"))
        #expect(try Self.boxes.map(scriptSHA) == before)
        for box in Self.boxes { #expect(try box.eval("return config.get('doorbell.ring_seconds')").text == "3") }

        // A source that does not compile fails the dry run as it would fail the real one, with
        // Lua's message under the script's name; still nothing changes.
        let broken = try Self.rollout(Self.source + "local = 3\n", seconds: 5, ["--check"])
        #expect(broken.status == 2, "\(broken.stdout)")
        for name in Self.names { #expect(Self.recap(broken.stdout, name)["failed"] == 1, "\(broken.stdout)") }
        #expect(broken.stdout.contains("scripts/doorbell.lua:3: <name> expected near '='"), "\(broken.stdout)")
        #expect(try Self.boxes.map(scriptSHA) == before)
    }

    @Test("a changed key fails every task with the re-pin line, and no box changes")
    func wrongPin() throws {
        let wrong = "sha256//" + String(repeating: "A", count: 43) + "="
        let result = try Self.rollout(
            Self.source + "-- sent to the wrong box\n", seconds: 9, ["-e", "luaexec_pin=\(wrong)"])
        #expect(result.status == 2)
        for (box, name) in zip(Self.boxes, Self.names) {
            #expect(Self.recap(result.stdout, name)["failed"] == 1)
            // The line `luaexec` prints, --name included (the playbook passes luaexec_remote as
            // remote): following it updates the remote instead of adding a second one.
            #expect(
                result.stdout.contains(
                    "luaexec login https://127.0.0.1:\(box.httpsPort!) --name \(name) --fingerprint \(ClientTests.fingerprint)"
                ))
            #expect(result.stdout.contains("the public key of \(name) (https://127.0.0.1:\(box.httpsPort!)) is not"))
        }
        for box in Self.boxes { #expect(try box.eval("return config.get('doorbell.ring_seconds')").text == "3") }
    }

    @Test("a token's secret is made once and kept out of the output by no_log")
    func tokenSecret() throws {
        let result = try Self.playbook("token.yml", ["-e", "secrets_dir=\(Self.controller)/secrets"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        for (box, name) in zip(Self.boxes, Self.names) {
            let secret = try String(contentsOfFile: Self.controller + "/secrets/\(name).token", encoding: .utf8)
            #expect(!secret.isEmpty)
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
            #expect(
                try box.request("/api/v1/whoami", token: secret).text == #"{"name":"monitoring","scopes":["metrics"]}"#)
            #expect(Self.recap(result.stdout, name)["changed"] == 2)
        }
        let again = try Self.playbook("token.yml", ["-e", "secrets_dir=\(Self.controller)/secrets"])
        for name in Self.names { #expect(Self.recap(again.stdout, name)["changed"] == 0) }
    }

    /// `ansible box1 -m luaexec.appliance.lua_exec` with `arguments` (JSON) and the box's url,
    /// token and pin from the inventory.
    static func luaExec(
        _ arguments: String, _ extra: [String] = [], environment: [String: String] = environment(controller)
    ) throws -> Stack.ProcessResult {
        try module("lua_exec", arguments, extra, environment: environment)
    }

    /// `ansible box1 -m luaexec.appliance.MODULE` with `arguments` (JSON) and box1's url, token
    /// and pin from the inventory.
    static func module(
        _ module: String, _ arguments: String, _ extra: [String] = [],
        environment: [String: String] = environment(controller)
    ) throws -> Stack.ProcessResult {
        let connection = #""url": "{{ luaexec_url }}", "token": "{{ luaexec_token }}", "pin": "{{ luaexec_pin }}""#
        return try Stack.run(
            venv + "/ansible",
            [
                "box1", "-i", controller + "/inventory/luaexec.yml", "-m", "luaexec.appliance." + module, "-a",
                "{\(connection), \(arguments)}",
            ]
                + extra,
            environment: environment)
    }

    @Test("script: a stored script is disabled and enabled again by its name alone; an unknown one says so")
    func scriptByName() throws {
        let box = Self.boxes[0]
        let source = #""source": "http.listen('by_name', function() return 'on' end)""#
        #expect(try Self.module("script", #""name": "by-name.lua", "state": "enabled", \#(source)"#).status == 0)
        #expect(try box.request("/api/v1/exec/by_name", token: box.adminToken).text == "on")
        let disabled = try Self.module("script", #""name": "by-name.lua", "state": "disabled""#)
        #expect(disabled.status == 0, "\(disabled.stdout)")
        #expect(disabled.stdout.contains(#""changed": true"#))
        #expect(try box.request("/api/v1/exec/by_name", token: box.adminToken).status == 404)
        let enabled = try Self.module("script", #""name": "by-name.lua", "state": "enabled""#)
        #expect(enabled.status == 0, "\(enabled.stdout)")
        #expect(enabled.stdout.contains(#""changed": true"#))
        #expect(try box.request("/api/v1/exec/by_name", token: box.adminToken).text == "on")
        let again = try Self.module("script", #""name": "by-name.lua", "state": "enabled""#)
        #expect(again.stdout.contains(#""changed": false"#), "\(again.stdout)")
        let unknown = try Self.module("script", #""name": "never-stored.lua", "state": "enabled""#)
        #expect(unknown.status == 2)
        #expect(unknown.stdout.contains("no script named never-stored.lua to enable; give source or src to install it"))
        #expect(try Self.module("script", #""name": "by-name.lua", "state": "absent""#).status == 0)
    }

    @Test("script: state disabled with a new source stores it disabled and never runs it; enabled then runs it")
    func scriptInstalledDisabled() throws {
        let box = Self.boxes[0]
        let source = #""source": "kept_off_ran = true http.listen('kept_off', function() return 'on' end)""#
        let disabled = try Self.module("script", #""name": "kept-off.lua", "state": "disabled", \#(source)"#)
        #expect(disabled.status == 0, "\(disabled.stdout)")
        #expect(disabled.stdout.contains(#""changed": true"#))
        #expect(disabled.stdout.contains(#""enabled": false"#), "\(disabled.stdout)")
        #expect(!disabled.stdout.contains("[WARNING]") && !disabled.stderr.contains("older luaexecd"))
        #expect(try box.eval("return kept_off_ran").body == [])
        #expect(try box.request("/api/v1/exec/kept_off", token: box.adminToken).status == 404)
        let again = try Self.module("script", #""name": "kept-off.lua", "state": "disabled", \#(source)"#)
        #expect(again.stdout.contains(#""changed": false"#), "\(again.stdout)")
        #expect(try box.eval("return kept_off_ran").body == [])
        // present leaves the flag as it is: a new version of the disabled script stays off.
        let newer = #""source": "kept_off_ran = 2 http.listen('kept_off', function() return 'on' end)""#
        let present = try Self.module("script", #""name": "kept-off.lua", \#(newer)"#)
        #expect(present.status == 0, "\(present.stdout)")
        #expect(present.stdout.contains(#""changed": true"#))
        #expect(present.stdout.contains(#""enabled": false"#), "\(present.stdout)")
        #expect(present.stdout.contains(#""version": 2"#), "\(present.stdout)")
        #expect(try box.eval("return kept_off_ran").body == [])
        let enabled = try Self.module("script", #""name": "kept-off.lua", "state": "enabled""#)
        #expect(enabled.status == 0, "\(enabled.stdout)")
        #expect(try box.eval("return kept_off_ran").text == "2")
        #expect(try box.request("/api/v1/exec/kept_off", token: box.adminToken).text == "on")
        #expect(try Self.module("script", #""name": "kept-off.lua", "state": "absent""#).status == 0)
    }

    @Test("the inventory runs the modules with the controller's own Python, whatever python3 comes first on PATH")
    func controllerPython() throws {
        // A controller with a pyenv-like shim first on PATH for every name interpreter discovery
        // tries, each failing as a pyenv shim without that version does; no interpreter set.
        let shims = Self.controller + "/shims"
        try FileManager.default.createDirectory(atPath: shims, withIntermediateDirectories: true)
        for name in ["python", "python3"] + (6...15).map({ "python3.\($0)" }) {
            let shim = shims + "/" + name
            try "#!/bin/sh\necho \"pyenv: \(name): command not found\" >&2\nexit 127\n".write(
                toFile: shim, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: shim)
        }
        var environment = Self.environment(Self.controller)
        environment["ANSIBLE_PYTHON_INTERPRETER"] = nil
        environment["PATH"] = shims + ":" + Self.venv + ":/usr/bin:/bin"
        let ran = try Self.luaExec(#""chunk": "return {changed = false, via = 'the controller'}""#, environment: environment)
        #expect(ran.status == 0, "\(ran.stdout)\(ran.stderr)")
        #expect(ran.stdout.contains(#""via": "the controller""#), "\(ran.stdout)")
        #expect(!ran.stdout.contains("pyenv:") && !ran.stderr.contains("pyenv:"))
        #expect(!ran.stderr.contains("interpreter discovery"), "\(ran.stderr)")
    }

    @Test("lua_exec: args in, results out as data; check mode compiles and runs nothing")
    func luaExec() throws {
        let ran = try Self.luaExec(
            #""chunk": "local n, t = ... return {changed = false, twice = n * 2, keys = t}", "args": [21, {"a": [true, null]}]"#
        )
        #expect(ran.status == 0, "\(ran.stdout)")
        #expect(ran.stdout.contains(#""changed": false"#))
        #expect(ran.stdout.contains(#""twice": 42"#))
        let box = Self.boxes[0]
        let checked = try Self.luaExec(#""chunk": "checked_by_ansible = true""#, ["--check"])
        #expect(checked.status == 0, "\(checked.stdout)")
        #expect(checked.stdout.contains(#""msg": "compiled on the appliance; not run (check mode)""#))
        #expect(try box.eval("return checked_by_ansible").body == [])
        let broken = try Self.luaExec(#""chunk": "return (""#, ["--check"])
        #expect(broken.status == 2)
        #expect(broken.stdout.contains("interactive.lua:1: unexpected symbol near <eof>"))
        // A file that is not UTF-8 keeps its bytes.
        let file = Self.controller + "/latin1.lua"
        try Data(Array("return {changed = false, same = '".utf8) + [0xE9] + Array("' == string.char(233)}".utf8)).write(
            to: URL(fileURLWithPath: file))
        let latin1 = try Self.luaExec(#""src": "\#(file)""#)
        #expect(latin1.status == 0, "\(latin1.stdout)")
        #expect(latin1.stdout.contains(#""same": true"#))
    }

    /// `command` run by sh in the collection's copy (ansible-test works from the collection root).
    static func inCollection(_ command: String, _ environment: [String: String] = [:]) throws -> Stack.ProcessResult {
        let root = controller + "/collections/ansible_collections/luaexec/appliance"
        return try Stack.run(
            "/bin/sh", ["-c", "cd '\(root)' && " + command],
            environment: Self.environment(controller).merging(environment) { $1 })
    }

    @Test("a token without the scope fails the task, naming the scope")
    func missingScope() throws {
        let narrow = try Self.boxes[0].makeToken("ansible-narrow", scopes: ["metrics"])
        let result = try Stack.run(
            Self.venv + "/ansible",
            [
                "box1", "-i", Self.controller + "/inventory/luaexec.yml", "-m", "luaexec.appliance.config", "-a",
                #"{"url": "{{ luaexec_url }}", "token": "\#(narrow)", "pin": "{{ luaexec_pin }}", "path": "a.b", "value": 1}"#,
            ],
            environment: Self.environment(Self.controller))
        #expect(result.status == 2)
        #expect(result.stdout.contains("answered HTTP 403: the token lacks the 'admin' scope"))
        #expect(!result.stdout.contains(narrow))
    }

    @Test("ansible-test sanity: the tests that need no network pass")
    func sanity() throws {
        // The others (validate-modules, pep8, pylint, yamllint, import, ansible-doc) install
        // their own requirements from PyPI into venvs of their own at each run.
        let tests = [
            "compile", "empty-init", "line-endings", "no-assert", "shebang", "symlinks", "no-smart-quotes",
            "use-argspec-type-path", "action-plugin-docs", "no-illegal-filenames", "no-get-exception",
            "replace-urlopen", "use-compat-six",
        ]
        let result = try Self.inCollection(
            "exec ansible-test sanity --python 3.11 " + tests.map { "--test " + $0 }.joined(separator: " "))
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("Running sanity test \"compile\" on Python 3.11"))
    }

    @Test("ansible-doc renders every plugin's DOCUMENTATION, EXAMPLES and RETURN")
    func documentation() throws {
        for module in ["lua_exec", "script", "token", "config"] {
            let result = try Self.inCollection("exec ansible-doc -t module luaexec.appliance.\(module)")
            #expect(result.status == 0, "\(module): \(result.stderr)")
            #expect(result.stdout.contains("EXAMPLES:") && result.stdout.contains("RETURN VALUES:"), "\(module)")
        }
        let inventory = try Self.inCollection("exec ansible-doc -t inventory luaexec.appliance.luaexec")
        #expect(inventory.status == 0, "\(inventory.stderr)")
    }

    @Test("pytest: the shared client's unit tests pass (pin, re-pin line, nothing sent to a wrong key)")
    func unitTests() throws {
        let pin = try Stack.run(
            "/bin/sh",
            [
                "-c",
                "openssl x509 -in '\(Stack.certificate.cert)' -pubkey -noout | openssl pkey -pubin -outform der"
                    + " | openssl dgst -sha256 -binary | openssl enc -base64",
            ]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let result = try Self.inCollection(
            "exec python -m pytest -q -p no:cacheprovider tests/unit",
            [
                "LUAEXEC_TEST_CERT": Stack.certificate.cert, "LUAEXEC_TEST_KEY": Stack.certificate.key,
                "LUAEXEC_TEST_PIN": "sha256//" + pin, "PYTHONPATH": Self.controller + "/collections",
                "PYTHONDONTWRITEBYTECODE": "1",
            ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("61 passed"))
    }

    /// galaxy.yml's `version:`.
    static func collectionVersion() throws -> String {
        let galaxy = try String(contentsOfFile: Stack.repository + "/ansible/galaxy.yml", encoding: .utf8)
        guard let line = galaxy.split(separator: "\n").first(where: { $0.hasPrefix("version: ") }) else {
            throw StackError("no version in ansible/galaxy.yml")
        }
        return String(line.dropFirst("version: ".count)).trimmingCharacters(in: .whitespaces)
    }

    @Test("ansible-galaxy builds the collection; docs/ansible.md names no other version's archive")
    func build() throws {
        let version = try Self.collectionVersion()
        let result = try Self.inCollection(
            "exec ansible-galaxy collection build --output-path '\(Self.controller)/built'")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: Self.controller + "/built/luaexec-appliance-\(version).tar.gz"))
        // Every luaexec-appliance-X.tar.gz the documentation names is this version's or a
        // variable's ($version): an install command that names an old archive fails.
        let docs = try String(contentsOfFile: Stack.repository + "/docs/ansible.md", encoding: .utf8)
        for mention in docs.components(separatedBy: "luaexec-appliance-").dropFirst() {
            guard let end = mention.range(of: ".tar.gz") else { continue }
            let named = String(mention[..<end.lowerBound])
            #expect(
                named == version || !(named.first?.isNumber ?? false),
                "docs/ansible.md names luaexec-appliance-\(named).tar.gz; galaxy.yml builds \(version)")
        }
    }

    @Test("config: a path with '..' or an integer past 64 bits fails before any request; nothing is touched")
    func configChecked() throws {
        let box = Self.boxes[0]
        let installed = try Self.module("script", #""name": "victim.lua", "state": "enabled", "source": "victim = 1""#)
        #expect(installed.status == 0, "\(installed.stdout)")
        // nginx decodes %2F and resolves '..': sent, these would reach the script or the tokens.
        for path in ["../scripts/victim.lua", "..%2Ftokens", "a//b"] {
            let result = try Self.module("config", #""path": "\#(path)", "state": "absent""#)
            #expect(result.status == 2, "\(result.stdout)")
            #expect(
                result.stdout.contains(
                    "bad path '\(path)': use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting or ending "
                        + "with '.', with no empty, '.' or '..' part between slashes"), "\(result.stdout)")
        }
        #expect(try box.request("/api/v1/admin/scripts/victim.lua", token: box.adminToken).status == 200)
        let big = try Self.module("config", #""path": "ansible.big", "value": 18446744073709551616"#)
        #expect(big.status == 2, "\(big.stdout)")
        #expect(big.stdout.contains("value 18446744073709551616 is outside the signed 64-bit range"), "\(big.stdout)")
        #expect(try box.eval("return config.get('ansible.big')").body == [])
        #expect(try Self.module("script", #""name": "victim.lua", "state": "absent""#).status == 0)
    }

    @Test("token: an expired token fails with when it expired and how to renew it; none is made without no_log")
    func tokenRules() throws {
        let box = Self.boxes[0]
        let result = try Self.playbook("token_expired.yml", ["-e", "secrets_dir=\(Self.controller)/secrets"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("token shortlived expired at "), "\(result.stdout)")
        #expect(
            result.stdout.contains(
                "it cannot be renewed in place: revoke it (state: absent), then make it again (state: present)"))
        #expect(
            Self.recap(result.stdout, "box1") == [
                "ok": 6, "changed": 4, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 1,
            ])
        let secret = try String(contentsOfFile: Self.controller + "/secrets/box1.shortlived", encoding: .utf8)
        #expect(!secret.isEmpty && !result.stdout.contains(secret) && !result.stderr.contains(secret))
        #expect(try box.request("/api/v1/whoami", token: secret).text == #"{"name":"shortlived","scopes":["metrics"]}"#)
        // An ad-hoc task has no no_log: the token is not made, and the message says what to do.
        let refused = try Self.module("token", #""name": "printed", "scopes": ["metrics"]"#)
        #expect(refused.status == 2, "\(refused.stdout)")
        #expect(refused.stdout.contains("Add no_log: true to the task and register the result"), "\(refused.stdout)")
        let tokens = try box.request("/api/v1/admin/tokens", token: box.adminToken)
        #expect(tokens.status == 200 && !tokens.text.contains(#""name":"printed""#), "\(tokens.text)")
    }

    @Test("script: diff mode shows a one-byte change of a source that is not UTF-8, and a removal; no source in the result")
    func scriptDiff() throws {
        let box = Self.boxes[0]
        let stored = Self.controller + "/latin1-stored.lua", given = Self.controller + "/latin1-given.lua"
        try Data(Array("local s = '".utf8) + [0xE9] + Array("'\n".utf8)).write(to: URL(fileURLWithPath: stored))
        try Data(Array("local s = '".utf8) + [0xE8] + Array("'\n".utf8)).write(to: URL(fileURLWithPath: given))
        let installed = try Self.module("script", #""name": "latin1.lua", "src": "\#(stored)""#)
        #expect(installed.status == 0, "\(installed.stdout)")
        #expect(installed.stdout.contains(#""sha256": "#) && !installed.stdout.contains(#""source""#), "\(installed.stdout)")
        let checked = try Self.module("script", #""name": "latin1.lua", "src": "\#(given)""#, ["--check", "--diff"])
        #expect(checked.status == 0, "\(checked.stdout)")
        #expect(checked.stdout.contains(#"-local s = '\xe9'"#), "\(checked.stdout)")
        #expect(checked.stdout.contains(#"+local s = '\xe8'"#), "\(checked.stdout)")
        let removed = try Self.module("script", #""name": "latin1.lua", "state": "absent""#, ["--diff"])
        #expect(removed.status == 0, "\(removed.stdout)")
        #expect(removed.stdout.contains("+++ after: latin1.lua (removed)"), "\(removed.stdout)")
        #expect(removed.stdout.contains(#"-local s = '\xe9'"#), "\(removed.stdout)")
        #expect(try box.request("/api/v1/admin/scripts/latin1.lua", token: box.adminToken).status == 404)
    }

    @Test("inline Lua marked !unsafe reaches the box as written, {{ }} and {# included")
    func inlineLua() throws {
        let box = Self.boxes[0]
        let result = try Self.playbook("inline.yml")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(#""corner": 3"#), "\(result.stdout)")
        #expect(result.stdout.contains(#""rows": 2"#))
        #expect(result.stdout.contains(#""text": "{{0}}""#))
        #expect(try box.request("/api/v1/exec/inline_grid", token: box.adminToken).text == "2 rows {{x}}")
        #expect(try Self.module("script", #""name": "inline-grid.lua", "state": "absent""#).status == 0)
    }

    @Test("the inventory: host names usable in patterns with the remote's name kept; clear errors for a bad remotes file")
    func inventoryNames() throws {
        let home = NSTemporaryDirectory() + "luaexec-ansible-inventory-\(UUID().uuidString)"
        let file = home + "/config/luaexec/remotes.json"
        try FileManager.default.createDirectory(atPath: home + "/config/luaexec", withIntermediateDirectories: true)
        // The collection from the controller, the remotes from this home; a source that fails to
        // parse fails the run (as docs/ansible.md recommends).
        let environment = Self.environment(Self.controller).merging([
            "HOME": home, "XDG_CONFIG_HOME": home + "/config", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        ]) { $1 }
        let inventory = Self.controller + "/inventory/luaexec.yml"
        func remote(_ name: String, _ port: Int, fingerprint: Bool = true) -> String {
            #"{"name": "\#(name)", "url": "https://127.0.0.1:\#(port)", "token": "t""#
                + (fingerprint ? #", "fingerprint": "\#(ClientTests.fingerprint)"}"# : "}")
        }
        func ansible(_ arguments: [String]) throws -> Stack.ProcessResult {
            try Stack.run(Self.venv + "/ansible", ["luaexec", "-i", inventory] + arguments, environment: environment)
        }
        // luaexec login's default name for a box on another port than 443 is HOST:PORT.
        try (#"{"remotes": ["# + [remote("127.0.0.1:8443", 8443), remote("all", 8444), remote("localhost", 8445),
            remote("luaexec", 8446)].joined(separator: ", ") + "]}").write(toFile: file, atomically: true, encoding: .utf8)
        let listed = try ansible(["--list-hosts"])
        #expect(listed.status == 0, "\(listed.stdout)\(listed.stderr)")
        for host in ["127.0.0.1:8443", "luaexec_all", "luaexec_localhost", "luaexec_luaexec"] {
            #expect(listed.stdout.contains("    \(host)\n"), "\(listed.stdout)")
        }
        // HOST:PORT as --limit takes it (as 0.1.2 named hosts).
        let limited = try ansible(["--limit", "127.0.0.1:8443", "-m", "ansible.builtin.debug", "-a", "var=luaexec_remote"])
        #expect(limited.status == 0, "\(limited.stdout)\(limited.stderr)")
        #expect(limited.stdout.contains(#""luaexec_remote": "127.0.0.1:8443""#), "\(limited.stdout)")
        #expect(!limited.stdout.contains("luaexec_all"))

        try (#"{"remotes": ["# + remote("box1", 8443, fingerprint: false) + "]}").write(
            toFile: file, atomically: true, encoding: .utf8)
        let broken = try ansible(["--list-hosts"])
        #expect(broken.status != 0)
        #expect(
            (broken.stdout + broken.stderr).contains(
                "the remote 'box1' in \(file) has no fingerprint: log in to it again with luaexec login URL --name NAME"),
            "\(broken.stdout)\(broken.stderr)")

        try FileManager.default.removeItem(atPath: file)
        let missing = try ansible(["--list-hosts"])
        #expect(missing.status != 0)
        #expect(
            (missing.stdout + missing.stderr).contains(
                "no luaexec remotes file \(file): log in to each box first with `luaexec login https://BOX`"),
            "\(missing.stdout)\(missing.stderr)")
    }

    @Test("a box that is down fails only that host; the others go on")
    func boxDown() throws {
        Self.boxes[2].stop()
        let result = try Self.rollout(Self.source, seconds: 4)
        #expect(result.status == 2)
        #expect(Self.recap(result.stdout, "box1")["failed"] == 0)
        #expect(Self.recap(result.stdout, "box2")["failed"] == 0)
        #expect(Self.recap(result.stdout, "box2")["changed"] == 1)
        #expect(Self.recap(result.stdout, "box3")["failed"] == 1)
        #expect(result.stdout.contains("cannot reach https://127.0.0.1:\(Self.boxes[2].httpsPort!)"))
        #expect(result.stdout.contains("is luaexecd's web server (nginx) up"), "\(result.stdout)")
    }
}
