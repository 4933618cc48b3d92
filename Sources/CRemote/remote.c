// HTTPS for the luaexec client: libcurl with the server's public key pinned. See cremote.h.

#include "cremote.h"

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libraries.h"

volatile sig_atomic_t lxr_sigint = 0;

static void on_sigint(int signo) {
    (void)signo;
    lxr_sigint = 1;
}

void lxr_catch_sigint(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR
    sigaction(SIGINT, &action, NULL);
    // A parent may have left SIGINT blocked (the mask is inherited across exec); Ctrl-C must
    // reach the handler.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct {
    unsigned char *data;
    size_t length, capacity;
    int failed;
} buffer;

static size_t append(buffer *b, const void *data, size_t length) {
    if (b->length + length + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->length + length + 1) capacity *= 2;
        unsigned char *grown = realloc(b->data, capacity);
        if (!grown) {
            b->failed = 1;
            return 0;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, data, length);
    b->length += length;
    b->data[b->length] = 0;
    return length;
}

typedef struct {
    buffer kept;
    const lxr_request *request;
    int too_large;
} body_context;

// More than any answer luaexecd gives (64 MiB rendered, and 16 MiB of output, which streamed
// as JSON events is at most 6 times that): a box that sends more is not read further, rather
// than held in memory until this process is killed.
#define LXR_BODY_LIMIT ((size_t)256 << 20)

static size_t on_body(char *data, size_t size, size_t count, void *context) {
    body_context *body = context;
    if (size * count > LXR_BODY_LIMIT - body->kept.length) {
        body->too_large = 1;
        return 0;  // curl ends the transfer (CURLE_WRITE_ERROR)
    }
    if (body->request->on_body) body->request->on_body(body->request->on_body_context, (const unsigned char *)data, size * count);
    return append(&body->kept, data, size * count);
}

static size_t on_header(char *data, size_t size, size_t count, void *context) {
    buffer *b = context;
    // A new response (after 100 Continue or a redirect) starts a new block: keep the last.
    if (size * count > 5 && memcmp(data, "HTTP/", 5) == 0) b->length = 0;
    return append(b, data, size * count);
}

typedef struct {
    const lxr_request *request;
    lxr_response *response;
} progress_context;

static void apply_pin(CURL *curl, const char *pin) {
    // The pin replaces the CA check, as ssh's known_hosts does: the appliance's certificate is
    // self-signed, and what matters is that its key is the one the user accepted.
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    if (pin) curl_easy_setopt(curl, CURLOPT_PINNEDPUBLICKEY, pin);
}

static void post_interrupt(const lxr_request *request) {
    CURL *curl = curl_easy_init();
    if (!curl) return;
    struct curl_slist *headers = curl_slist_append(NULL, request->interrupt_header);
    curl_easy_setopt(curl, CURLOPT_URL, request->interrupt_url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    apply_pin(curl, request->pin);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    FILE *sink = fopen("/dev/null", "w");
    if (sink) curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_perform(curl);
    if (sink) fclose(sink);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

// Called by libcurl at least once a second while it waits: where Ctrl-C is noticed.
static int on_progress(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    progress_context *p = context;
    if (!lxr_sigint) return 0;
    lxr_sigint = 0;
    if (p->request->interrupt_url && !p->response->interrupt_sent) {
        p->response->interrupt_sent = 1;
        post_interrupt(p->request);  // a second easy handle: allowed inside a callback
        return 0;
    }
    p->response->cancelled = 1;
    return 1;
}


int lxr_perform(const lxr_request *request, lxr_response *response) {
    memset(response, 0, sizeof *response);
    if (lxr_load_curl(response->error, sizeof response->error) != 0) {
        response->curl_code = CURLE_FAILED_INIT;
        return -1;
    }
    pthread_once(&global_once, global_init);
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(response->error, sizeof response->error, "libcurl could not start a transfer");
        response->curl_code = CURLE_FAILED_INIT;
        return -1;
    }
    body_context body = {.request = request};
    buffer headers = {0};
    struct curl_slist *list = NULL;
    for (int i = 0; i < request->header_count; i++) list = curl_slist_append(list, request->headers[i]);
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip for larger chunks

    curl_easy_setopt(curl, CURLOPT_URL, request->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    apply_pin(curl, request->pin);
    if (strcmp(request->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request->body ? (const char *)request->body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body_length);
        if (strcmp(request->method, "POST") != 0) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request->method);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &headers);
    if (request->connect_timeout_ms) curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, request->connect_timeout_ms);
    if (request->timeout_ms) curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, request->timeout_ms);
    progress_context progress = {request, response};
    if (request->watch_sigint) {
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &progress);
    }
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);

    CURLcode code = curl_easy_perform(curl);
    response->curl_code = (int)code;
    response->pin_mismatch = code == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
    if (code == CURLE_OPERATION_TIMEDOUT && request->timeout_ms) {
        // Past the handshake, the request reached the box: it may run on after the client left.
        curl_off_t handshake = 0;
        curl_easy_getinfo(curl, CURLINFO_APPCONNECT_TIME_T, &handshake);
        response->timed_out = handshake > 0;
    }
    if (code == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
    } else {
        snprintf(response->error, sizeof response->error, "%s", error[0] ? error : curl_easy_strerror(code));
    }
    if (body.too_large) {
        snprintf(response->error, sizeof response->error,
            "the answer passed 256 MiB, more than luaexecd ever sends; the rest was not read");
    } else if (body.kept.failed || headers.failed) {
        snprintf(response->error, sizeof response->error, "out of memory reading the answer");
        response->curl_code = CURLE_OUT_OF_MEMORY;
    }
    response->body = body.kept.data;
    response->body_length = body.kept.length;
    response->headers = (char *)headers.data;
    response->headers_length = headers.length;
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return response->curl_code == CURLE_OK ? 0 : -1;
}

void lxr_response_free(lxr_response *response) {
    free(response->body);
    free(response->headers);
    response->body = NULL;
    response->headers = NULL;
}

// SHA-256 of the DER SubjectPublicKeyInfo of the PEM certificate, as "sha256//BASE64".
static int spki_fingerprint(const char *pem, char *out, size_t out_size) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *certificate = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!certificate) return -1;
    unsigned char *der = NULL;
    int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certificate), &der);
    X509_free(certificate);
    if (length <= 0) return -1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    int ok = EVP_Digest(der, (size_t)length, digest, &digest_length, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (!ok) return -1;
    unsigned char encoded[64];
    int encoded_length = EVP_EncodeBlock(encoded, digest, (int)digest_length);
    if (encoded_length <= 0 || (size_t)encoded_length + 9 > out_size) return -1;
    snprintf(out, out_size, "sha256//%s", encoded);
    return 0;
}

int lxr_fingerprint(const char *url, long timeout_ms, char *out, size_t out_size, char *error, size_t error_size) {
    if (lxr_load_curl(error, error_size) != 0) return -1;
    pthread_once(&global_once, global_init);
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(error, error_size, "libcurl could not start a transfer");
        return -1;
    }
    char message[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    apply_pin(curl, NULL);
    CURLcode code = curl_easy_perform(curl);
    int result = -1;
    if (code != CURLE_OK) {
        snprintf(error, error_size, "%s", message[0] ? message : curl_easy_strerror(code));
    } else {
        struct curl_certinfo *chain = NULL;
        curl_easy_getinfo(curl, CURLINFO_CERTINFO, &chain);
        const char *pem = NULL;
        if (chain && chain->num_of_certs > 0) {
            for (struct curl_slist *field = chain->certinfo[0]; field; field = field->next) {
                if (strncmp(field->data, "Cert:", 5) == 0) pem = field->data + 5;
            }
        }
        if (!pem) {
            snprintf(error, error_size, "the server sent no certificate");
        } else if (spki_fingerprint(pem, out, out_size) != 0) {
            snprintf(error, error_size, "the server's certificate could not be read");
        } else {
            result = 0;
        }
    }
    curl_easy_cleanup(curl);
    return result;
}
