//! Reading the data of NGINX buffers (memory or file), as request bodies
//! and captured subrequest responses come: a buffer may be in memory, in a
//! temp or cache file, or carry no data at all (`sync`, `last_buf`, `flush`
//! and other special buffers, whose pointers may be null).

use nginx_sys::{ngx_buf_t, ngx_file_t, ngx_read_file};

/// Where the bytes of one buffer are.
pub enum BufData<'a> {
    /// No bytes (special buffer, or already consumed).
    Empty,
    /// In memory.
    Memory(&'a [u8]),
    /// In a file (temp file, cache file).
    File {
        /// The open file.
        file: *mut ngx_file_t,
        /// Offset of the first byte.
        offset: i64,
        /// Number of bytes.
        len: usize,
    },
}

impl BufData<'_> {
    /// Number of bytes.
    pub fn len(&self) -> usize {
        match self {
            BufData::Empty => 0,
            BufData::Memory(s) => s.len(),
            BufData::File { len, .. } => *len,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the bytes into `dst` (exactly `self.len()` bytes); false if a
    /// file could not be read whole.
    ///
    /// # Safety
    /// A file buffer's file must still be open.
    pub unsafe fn copy_to(&self, dst: &mut [u8]) -> bool {
        match self {
            BufData::Empty => true,
            BufData::Memory(s) => {
                dst.copy_from_slice(s);
                true
            }
            BufData::File { file, offset, len } => {
                ngx_read_file(*file, dst.as_mut_ptr(), *len, *offset) == *len as isize
            }
        }
    }
}

/// The data of `b`, checking pointers before building any slice.
///
/// # Safety
/// `b` must be a buffer NGINX handed over (its pointers, when not null,
/// delimit readable memory).
pub unsafe fn buf_data(b: &ngx_buf_t) -> BufData<'_> {
    let in_memory = b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0;
    if in_memory {
        if b.pos.is_null() || b.last.is_null() || (b.last as usize) <= (b.pos as usize) {
            return BufData::Empty;
        }
        let len = b.last as usize - b.pos as usize;
        return BufData::Memory(core::slice::from_raw_parts(b.pos, len));
    }
    if b.in_file() != 0 && !b.file.is_null() && b.file_last > b.file_pos {
        return BufData::File {
            file: b.file,
            offset: b.file_pos,
            len: (b.file_last - b.file_pos) as usize,
        };
    }
    BufData::Empty
}

/// Marks `b` consumed (as an output filter that took its data).
pub fn consume(b: &mut ngx_buf_t) {
    b.pos = b.last;
    if b.in_file() != 0 {
        b.file_pos = b.file_last;
    }
}
