import CLuaSupport

extension LuaVM {
    /// Hands CLuaSupport's timer module the hook that keeps `timers` in step with the functions
    /// in the state (the hook runs on the state's thread, during a call, while `self` is alive).
    func installTimerHook() {
        lx_set_timer_hook(runtime, { context, id, removed, seconds, every, source, line in
            guard let context else { return }
            Unmanaged<LuaVM>.fromOpaque(context).takeUnretainedValue().timerChanged(
                id: Int64(id), removed: removed != 0, seconds: seconds, every: every != 0,
                source: source.map { String(cString: $0) } ?? "", line: Int(line))
        }, Unmanaged.passUnretained(self).toOpaque(), Int32(clamping: maxTimers))
    }

    private func timerChanged(id: Int64, removed: Bool, seconds: Double, every: Bool, source: String, line: Int) {
        if removed { return timers.remove(id: id) }
        timers.add(
            id: id, seconds: seconds, every: every, origin: origin(source: source, line: line), ownWork: caller.isOwnWork)
    }

    /// Who set a timer or registered a name now: the running init script (the file and line of
    /// the call), stored script, request's token, or whoever set the timer or registered the
    /// handler whose run it is.
    func origin(source: String, line: Int) -> EndpointRegistry.Origin {
        switch caller {
        case .initScript(let path):
            // The call's own chunk: a helper in another script that sets it for this one is
            // named as the file and line where the call was.
            var source = source
            if source.hasPrefix("=") || source.hasPrefix("@") { source.removeFirst() }
            return .script(path: source.isEmpty || source == "?" ? path : source, line: line)
        case .storedScript(let script, let version):
            return .storedScript(name: script, version: version, line: line)
        case .request(let token):
            return .token(token)
        case .timer(let origin, _), .handler(let origin):
            return origin
        }
    }

    /// Forgets timer `id`'s function (a `timer.after` that ran).
    public func dropTimer(_ id: Int64) {
        lx_drop_timer(runtime, id)
    }

    /// Withdraws the timers that `matches` picks (a stored script's, as a version replaces it).
    public func withdrawTimers(where matches: (TimerSchedule.Entry) -> Bool) {
        for id in timers.removeAll(where: matches) { lx_drop_timer(runtime, id) }
    }
}
