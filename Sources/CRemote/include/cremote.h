#ifndef CREMOTE_H
#define CREMOTE_H

#include <signal.h>
#include <stddef.h>

// The client side of luaexec (`luaexec login|eval|repl`): HTTPS through Debian's libcurl with the
// server's public key pinned (CURLOPT_PINNEDPUBLICKEY, the format `curl --pinnedpubkey` takes),
// the first-contact fingerprint through OpenSSL, and line editing through Debian's libedit.
// Plain C callbacks only; the one way back into Swift is Tab's completer, a C function pointer
// that answers with a status and a malloc'd list (it never longjmps).

/// Set by the SIGINT handler that lxr_catch_sigint installs; cleared by whoever handles it.
extern volatile sig_atomic_t lxr_sigint;

/// Installs a SIGINT handler that sets lxr_sigint, without SA_RESTART, so that a blocking
/// read (the line editor's) returns EINTR.
void lxr_catch_sigint(void);

typedef struct {
    const char *url;
    const char *method;             // "GET", "POST"
    const char *pin;                // "sha256//BASE64": the connection is refused unless the key matches
    const char *const *headers;     // "Name: value" lines
    int header_count;
    const unsigned char *body;
    size_t body_length;
    long connect_timeout_ms;
    long timeout_ms;                // whole transfer; 0 for none
    // Ctrl-C while waiting: with an interrupt URL, one POST there (with interrupt_header) and
    // the wait goes on for the answer; without one, or at a second Ctrl-C, the transfer ends.
    int watch_sigint;
    const char *interrupt_url;
    const char *interrupt_header;
    // Called with each part of the body as it arrives (a streamed answer: SPEC E13), besides
    // keeping it all in the response; NULL: only kept.
    void (*on_body)(void *context, const unsigned char *data, size_t length);
    void *on_body_context;
} lxr_request;

typedef struct {
    long status;
    char *headers;                  // the last response's header block, as received
    size_t headers_length;
    unsigned char *body;
    size_t body_length;
    int curl_code;                  // CURLE_OK (0) when a response came
    int pin_mismatch;               // the server's key is not the pinned one
    int cancelled;                  // ended by Ctrl-C
    int interrupt_sent;             // an interrupt was posted during the wait
    int timed_out;                  // timeout_ms passed after the connection was made
    char error[256];
} lxr_response;

int lxr_perform(const lxr_request *request, lxr_response *response);
void lxr_response_free(lxr_response *response);

/// Connects to `url` without checking the certificate and without sending anything but a HEAD
/// request, and writes the SHA-256 of the server certificate's public key (SubjectPublicKeyInfo)
/// as "sha256//BASE64" into `out`. 0 on success; otherwise a message in `error`.
int lxr_fingerprint(const char *url, long timeout_ms, char *out, size_t out_size, char *error, size_t error_size);

/// Line editing with history (libedit's native API).
typedef struct lxe lxe;
lxe *lxe_open(const char *program, const char *history_file);
/// 0: a line in *line (without its newline; valid until the next call); 1: end of input
/// (Ctrl-D); 2: Ctrl-C (the line is dropped).
int lxe_read(lxe *editor, const char *prompt, const char **line);
/// Adds a line to the history and saves the history file.
void lxe_remember(lxe *editor, const char *line);
void lxe_close(lxe *editor);

/// Tab completion (SPEC O10): given the text before the cursor, answers 0 with `*names` set to a
/// malloc'd list of names, each ended by '\n' (the editor frees it), and `*word_length` to how
/// many bytes before the cursor they replace; anything else: nothing to offer (a beep). Called
/// on the editor's thread while a line is read; it must not longjmp.
typedef int (*lxe_completer)(void *context, const char *before, size_t length, char **names, size_t *word_length);
/// Binds Tab to `completer`: one name is inserted; several insert what they have in common, and
/// a Tab with nothing more in common lists them under the line.
void lxe_set_completer(lxe *editor, lxe_completer completer, void *context);

#endif
