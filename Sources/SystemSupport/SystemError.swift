#if canImport(Glibc)
import Glibc
#endif

/// What the C library says of the error `code`, for a message a person reads ("No such file or
/// directory"). The default is `errno` as it is where this is called (a default argument is
/// evaluated at the call), so call it before anything else can change it.
public func systemErrorText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
