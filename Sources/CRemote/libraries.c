// Opens the client's libraries when the client first needs them. luaexecd and luaexec are one
// executable (docs/packaging.md), and the daemon never makes an HTTPS request or edits a line:
// linked, libcurl (with GnuTLS, Kerberos, LDAP, SASL, libssh2...), OpenSSL's libcrypto and
// libedit were about 6 MB of the daemon's resident memory and a part of its start-up.
// The package's Depends name them (packaging/build-deb.sh), as dpkg-shlibdeps cannot see them.
#define LXR_LIBRARIES_IMPLEMENTATION
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <histedit.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>

#include "libraries.h"

struct lxr_curl lxr_curl;
struct lxr_edit lxr_edit;

static char curl_error[512], edit_error[512];
static int curl_loaded, edit_loaded;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT, edit_once = PTHREAD_ONCE_INIT;

// One library's functions: each name and the pointer it is resolved into.
typedef struct {
    const char *name;
    void **slot;
} lxr_symbol;

#define LXR_CURL_SYMBOL(name) {#name, (void **)&lxr_curl.name},
#define LXR_EDIT_SYMBOL(name) {#name, (void **)&lxr_edit.name},
static const lxr_symbol curl_symbols[] = {LXR_CURL_FUNCTIONS(LXR_CURL_SYMBOL)};
static const lxr_symbol crypto_symbols[] = {LXR_CRYPTO_FUNCTIONS(LXR_CURL_SYMBOL)};
static const lxr_symbol edit_symbols[] = {LXR_EDIT_FUNCTIONS(LXR_EDIT_SYMBOL)};

// Opens `soname` and resolves every symbol of it; 1, or 0 with the reason in `message`.
static int open_library(const char *soname, const lxr_symbol *symbols, size_t count, char *message, size_t size) {
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(message, size, "cannot load %s: %s", soname, dlerror());
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        // POSIX guarantees a function's address fits in the void * dlsym returns.
        if (!(*symbols[i].slot = dlsym(handle, symbols[i].name))) {
            snprintf(message, size, "%s has no %s", soname, symbols[i].name);
            return 0;
        }
    }
    return 1;
}

#define LXR_COUNT(array) (sizeof(array) / sizeof(array)[0])

static void load_curl(void) {
    curl_loaded = open_library("libcurl.so.4", curl_symbols, LXR_COUNT(curl_symbols), curl_error, sizeof curl_error)
        && open_library("libcrypto.so.3", crypto_symbols, LXR_COUNT(crypto_symbols), curl_error, sizeof curl_error);
}

static void load_edit(void) {
    edit_loaded = open_library("libedit.so.2", edit_symbols, LXR_COUNT(edit_symbols), edit_error, sizeof edit_error);
}

int lxr_load_curl(char *error, size_t error_size) {
    pthread_once(&curl_once, load_curl);
    if (curl_loaded) return 0;
    snprintf(error, error_size, "%s", curl_error);
    return -1;
}

int lxr_load_edit(char *error, size_t error_size) {
    pthread_once(&edit_once, load_edit);
    if (edit_loaded) return 0;
    snprintf(error, error_size, "%s", edit_error);
    return -1;
}
