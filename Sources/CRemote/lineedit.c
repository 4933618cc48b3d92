// Line editing and history for `luaexec repl`, through libedit's native API (Debian's
// libedit, BSD-licensed). See cremote.h.

#include "cremote.h"

#include <errno.h>
#include <histedit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libraries.h"

struct lxe {
    EditLine *editline;
    History *history;
    HistEvent event;
    const char *prompt;
    char *history_file;
    char *line;
};

static char *prompt_of(EditLine *editline) {
    struct lxe *editor = NULL;
    el_get(editline, EL_CLIENTDATA, &editor);
    return (char *)(editor && editor->prompt ? editor->prompt : "> ");
}

lxe *lxe_open(const char *program, const char *history_file) {
    char error[512];
    if (lxr_load_edit(error, sizeof error) != 0) {
        fprintf(stderr, "luaexec: %s\n", error);
        return NULL;
    }
    struct lxe *editor = calloc(1, sizeof *editor);
    if (!editor) return NULL;
    editor->editline = el_init(program, stdin, stdout, stderr);
    editor->history = history_init();
    if (!editor->editline || !editor->history) {
        lxe_close(editor);
        return NULL;
    }
    history(editor->history, &editor->event, H_SETSIZE, 1000);
    history(editor->history, &editor->event, H_SETUNIQUE, 1);
    el_set(editor->editline, EL_CLIENTDATA, editor);
    el_set(editor->editline, EL_PROMPT, prompt_of);
    el_set(editor->editline, EL_EDITOR, "emacs");
    el_set(editor->editline, EL_HIST, lxr_edit.history, editor->history);
    // Ctrl-C is the caller's SIGINT handler (lxr_catch_sigint): the read returns EINTR and the
    // line is dropped. libedit's own signal handling stays off.
    el_set(editor->editline, EL_SIGNAL, 0);
    el_source(editor->editline, NULL);  // ~/.editrc, as other libedit programs read it
    if (history_file) {
        editor->history_file = strdup(history_file);
        history(editor->history, &editor->event, H_LOAD, history_file);
    }
    return editor;
}

int lxe_read(lxe *editor, const char *prompt, const char **line) {
    editor->prompt = prompt;
    lxr_sigint = 0;
    int count = 0;
    errno = 0;
    const char *text = el_gets(editor->editline, &count);
    if (!text) {
        if (lxr_sigint || errno == EINTR) {
            lxr_sigint = 0;
            el_reset(editor->editline);
            return 2;
        }
        return 1;
    }
    free(editor->line);
    editor->line = strdup(text);
    if (!editor->line) return 1;
    size_t length = strlen(editor->line);
    if (length > 0 && editor->line[length - 1] == '\n') editor->line[length - 1] = 0;
    *line = editor->line;
    return 0;
}

void lxe_remember(lxe *editor, const char *line) {
    if (!line[0]) return;
    history(editor->history, &editor->event, H_ENTER, line);
    if (editor->history_file) history(editor->history, &editor->event, H_SAVE, editor->history_file);
}

void lxe_close(lxe *editor) {
    if (!editor) return;
    if (editor->editline) el_end(editor->editline);
    if (editor->history) history_end(editor->history);
    free(editor->history_file);
    free(editor->line);
    free(editor);
}
