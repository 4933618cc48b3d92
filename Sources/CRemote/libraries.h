// The client's libraries, opened with dlopen when the client first needs them (libraries.c).
// Included by remote.c and lineedit.c after the libraries' own headers: their calls go through
// the pointers below, so the executable does not link libcurl, libcrypto or libedit.
#ifndef LXR_LIBRARIES_H
#define LXR_LIBRARIES_H

#include <stddef.h>

#define LXR_CURL_FUNCTIONS(X) \
    X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_perform) X(curl_easy_getinfo) \
    X(curl_easy_cleanup) X(curl_easy_strerror) X(curl_slist_append) X(curl_slist_free_all)
#define LXR_CRYPTO_FUNCTIONS(X) \
    X(BIO_new_mem_buf) X(BIO_free) X(PEM_read_bio_X509) X(X509_free) X(X509_get_X509_PUBKEY) \
    X(i2d_X509_PUBKEY) X(EVP_Digest) X(EVP_sha256) X(EVP_EncodeBlock) X(CRYPTO_free)
#define LXR_EDIT_FUNCTIONS(X) \
    X(el_init) X(el_end) X(el_set) X(el_get) X(el_gets) X(el_reset) X(el_source) X(el_line) X(el_insertstr) \
    X(history_init) X(history_end) X(history)

#define LXR_POINTER(name) __typeof__(name) *name;

#if defined(HEADER_CURL_H) || defined(CURLINC_CURL_H)
struct lxr_curl { LXR_CURL_FUNCTIONS(LXR_POINTER) LXR_CRYPTO_FUNCTIONS(LXR_POINTER) };
extern struct lxr_curl lxr_curl;
/// Opens libcurl and libcrypto once; 0, or -1 with the reason in `error`.
int lxr_load_curl(char *error, size_t error_size);
#endif

#ifdef _HISTEDIT_H_
struct lxr_edit { LXR_EDIT_FUNCTIONS(LXR_POINTER) };
extern struct lxr_edit lxr_edit;
/// Opens libedit once; 0, or -1 with the reason in `error`.
int lxr_load_edit(char *error, size_t error_size);
#endif

// Calls by name go through the pointers: function-like macros, so that a field or a value of
// the same name (`editor->history`) is left alone.
#ifndef LXR_LIBRARIES_IMPLEMENTATION
#if defined(HEADER_CURL_H) || defined(CURLINC_CURL_H)
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define LXR_CALL_CURL(name) lxr_curl.name
#define curl_global_init(...) LXR_CALL_CURL(curl_global_init)(__VA_ARGS__)
#define curl_easy_init(...) LXR_CALL_CURL(curl_easy_init)(__VA_ARGS__)
#define curl_easy_setopt(...) LXR_CALL_CURL(curl_easy_setopt)(__VA_ARGS__)
#define curl_easy_perform(...) LXR_CALL_CURL(curl_easy_perform)(__VA_ARGS__)
#define curl_easy_getinfo(...) LXR_CALL_CURL(curl_easy_getinfo)(__VA_ARGS__)
#define curl_easy_cleanup(...) LXR_CALL_CURL(curl_easy_cleanup)(__VA_ARGS__)
#define curl_easy_strerror(...) LXR_CALL_CURL(curl_easy_strerror)(__VA_ARGS__)
#define curl_slist_append(...) LXR_CALL_CURL(curl_slist_append)(__VA_ARGS__)
#define curl_slist_free_all(...) LXR_CALL_CURL(curl_slist_free_all)(__VA_ARGS__)
#define BIO_new_mem_buf(...) LXR_CALL_CURL(BIO_new_mem_buf)(__VA_ARGS__)
#define BIO_free(...) LXR_CALL_CURL(BIO_free)(__VA_ARGS__)
#define PEM_read_bio_X509(...) LXR_CALL_CURL(PEM_read_bio_X509)(__VA_ARGS__)
#define X509_free(...) LXR_CALL_CURL(X509_free)(__VA_ARGS__)
#define X509_get_X509_PUBKEY(...) LXR_CALL_CURL(X509_get_X509_PUBKEY)(__VA_ARGS__)
#define i2d_X509_PUBKEY(...) LXR_CALL_CURL(i2d_X509_PUBKEY)(__VA_ARGS__)
#define EVP_Digest(...) LXR_CALL_CURL(EVP_Digest)(__VA_ARGS__)
#define EVP_sha256(...) LXR_CALL_CURL(EVP_sha256)(__VA_ARGS__)
#define EVP_EncodeBlock(...) LXR_CALL_CURL(EVP_EncodeBlock)(__VA_ARGS__)
#define CRYPTO_free(...) LXR_CALL_CURL(CRYPTO_free)(__VA_ARGS__)
#endif
#ifdef _HISTEDIT_H_
#define el_init(...) lxr_edit.el_init(__VA_ARGS__)
#define el_end(...) lxr_edit.el_end(__VA_ARGS__)
#define el_set(...) lxr_edit.el_set(__VA_ARGS__)
#define el_get(...) lxr_edit.el_get(__VA_ARGS__)
#define el_gets(...) lxr_edit.el_gets(__VA_ARGS__)
#define el_reset(...) lxr_edit.el_reset(__VA_ARGS__)
#define el_source(...) lxr_edit.el_source(__VA_ARGS__)
#define el_line(...) lxr_edit.el_line(__VA_ARGS__)
#define el_insertstr(...) lxr_edit.el_insertstr(__VA_ARGS__)
#define history_init(...) lxr_edit.history_init(__VA_ARGS__)
#define history_end(...) lxr_edit.history_end(__VA_ARGS__)
#define history(...) lxr_edit.history(__VA_ARGS__)
#endif
#endif

#endif
