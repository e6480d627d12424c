/* Shared between the store's writer, reader and merger: the datasets of one file. */
#ifndef LL_STORE_INTERNAL_H
#define LL_STORE_INTERNAL_H

#include <hdf5.h>

#include "ll_store.h"


typedef struct {
    hid_t tokens, positions, offsets, row_offsets, index;
    hid_t row_seq, row_pos, row_tok;
    hid_t id_len, meta_len, id_bytes, meta_bytes; /* ids and metadata until the run completes */
    hid_t progress;
    hid_t acts[LL_STORE_MAX_POINTS];
} ll_store_files;

/* Rows per chunk of an activation dataset (about 1 MiB per chunk). */
size_t ll_store_chunk_rows(int width, size_t el);

void ll_store_files_init(ll_store_files *d);
void ll_store_files_close(ll_store_files *d, int n_points);
/* Groups, datasets and the creation-time attributes of a new file. */
ll_status ll_store_files_create(hid_t file, const char *path, const ll_store_spec *spec, ll_store_files *d);
/* Open the datasets of an existing file, checking the points match the spec. */
ll_status ll_store_files_open(hid_t file, const char *path, const ll_store_spec *spec, ll_store_files *d);
/* Same identity attributes and dtype as spec? Also reports `complete`. */
ll_status ll_store_check_identity(hid_t file, const char *path, const ll_store_spec *spec, bool *complete);
ll_status ll_store_read_progress(hid_t progress, const char *path, ll_store_progress *p);
/* Cut every growing dataset back to what `p` says is committed. */
ll_status ll_store_files_truncate(ll_store_files *d, int n_points, const ll_store_progress *p);
/* Turn the committed id and metadata bytes into string datasets and drop the bytes. */
ll_status ll_store_write_strings(hid_t file, const char *path, const ll_store_progress *p);

#endif
