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
    lxe_completer completer;
    void *completer_context;
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

// MARK: - Tab completion

// The names of a completer's list (each ended by '\n') written one after another in columns, as
// a shell lists its completions, under the line being edited.
static void list_names(char **names, size_t count) {
    size_t widest = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(names[i]);
        if (n > widest) widest = n;
    }
    size_t columns = 80 / (widest + 2);
    if (columns == 0) columns = 1;
    fputc('\n', stdout);
    for (size_t i = 0; i < count; i++) {
        int last = (i + 1) % columns == 0 || i + 1 == count;
        if (last) fprintf(stdout, "%s\n", names[i]);
        else fprintf(stdout, "%-*s", (int)(widest + 2), names[i]);
    }
    fflush(stdout);
}

// Tab: the completer's names for the text before the cursor. One is inserted whole; several
// insert the bytes they share beyond the word typed, and when they share no more, are listed.
static unsigned char complete_key(EditLine *editline, int key) {
    (void)key;
    struct lxe *editor = NULL;
    el_get(editline, EL_CLIENTDATA, &editor);
    if (!editor || !editor->completer) return CC_ERROR;
    const LineInfo *info = el_line(editline);
    char *list = NULL;
    size_t word = 0;
    size_t before = (size_t)(info->cursor - info->buffer);
    if (editor->completer(editor->completer_context, info->buffer, before, &list, &word) != 0 || !list) {
        free(list);
        return CC_ERROR;
    }
    size_t count = 0;
    for (char *p = list; *p; p++) count += *p == '\n';
    char **names = count ? calloc(count, sizeof *names) : NULL;
    if (!names) {
        free(list);
        return CC_ERROR;
    }
    size_t found = 0;
    for (char *p = list, *end; found < count && (end = strchr(p, '\n')); p = end + 1) {
        *end = 0;
        names[found++] = p;
    }
    // What every name has in common.
    size_t common = strlen(names[0]);
    for (size_t i = 1; i < found; i++) {
        size_t j = 0;
        while (j < common && names[i][j] == names[0][j]) j++;
        common = j;
    }
    unsigned char status = CC_REFRESH;
    if (common > word && word <= strlen(names[0])) {
        char saved = names[0][common];
        names[0][common] = 0;
        if (el_insertstr(editline, names[0] + word) != 0) status = CC_ERROR;
        names[0][common] = saved;
    } else if (found > 1) {
        list_names(names, found);
        status = CC_REDISPLAY;
    } else {
        status = CC_NORM;
    }
    free(names);
    free(list);
    return status;
}

void lxe_set_completer(lxe *editor, lxe_completer completer, void *context) {
    editor->completer = completer;
    editor->completer_context = context;
    el_set(editor->editline, EL_ADDFN, "luaexec-complete", "complete a name from the remote's state", complete_key);
    el_set(editor->editline, EL_BIND, "^I", "luaexec-complete", NULL);
}
