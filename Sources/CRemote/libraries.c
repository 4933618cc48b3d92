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

static void *open_library(const char *soname, char *error, size_t error_size) {
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) snprintf(error, error_size, "cannot load %s: %s", soname, dlerror());
    return handle;
}

// Resolves one function of `handle`; on failure, says which in `message`.
#define LXR_RESOLVE(table, name)                                                                   \
    if (loaded && !(table.name = (__typeof__(table.name))dlsym(handle, #name))) {                 \
        snprintf(message, message_size, "%s has no %s", soname, #name);                            \
        loaded = 0;                                                                                \
    }
#define LXR_RESOLVE_CURL(name) LXR_RESOLVE(lxr_curl, name)
#define LXR_RESOLVE_EDIT(name) LXR_RESOLVE(lxr_edit, name)

static void load_curl(void) {
    char *message = curl_error;
    size_t message_size = sizeof curl_error;
    int loaded = 1;
    const char *soname = "libcurl.so.4";
    void *handle = open_library(soname, message, message_size);
    if (!handle) return;
    LXR_CURL_FUNCTIONS(LXR_RESOLVE_CURL)
    if (!loaded) return;
    soname = "libcrypto.so.3";
    if (!(handle = open_library(soname, message, message_size))) return;
    LXR_CRYPTO_FUNCTIONS(LXR_RESOLVE_CURL)
    curl_loaded = loaded;
}

static void load_edit(void) {
    char *message = edit_error;
    size_t message_size = sizeof edit_error;
    int loaded = 1;
    const char *soname = "libedit.so.2";
    void *handle = open_library(soname, message, message_size);
    if (!handle) return;
    LXR_EDIT_FUNCTIONS(LXR_RESOLVE_EDIT)
    edit_loaded = loaded;
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
