/// A value with a fixed little-endian layout in guest memory, read and
/// written with [`GuestMemoryExt`](super::GuestMemoryExt). Encoding is
/// explicit, so any bytes the guest left decode to some value and no
/// padding or host layout leaks into guest memory.
pub trait GuestObject: Sized {
    /// The encoded form, e.g. `[u8; 8]`.
    type Bytes: AsRef<[u8]> + AsMut<[u8]> + Default;

    fn from_guest_bytes(bytes: Self::Bytes) -> Self;

    fn to_guest_bytes(&self) -> Self::Bytes;
}

macro_rules! little_endian_object {
    ($($ty:ty),*) => {$(
        impl GuestObject for $ty {
            type Bytes = [u8; core::mem::size_of::<$ty>()];

            fn from_guest_bytes(bytes: Self::Bytes) -> Self {
                <$ty>::from_le_bytes(bytes)
            }

            fn to_guest_bytes(&self) -> Self::Bytes {
                self.to_le_bytes()
            }
        }
    )*};
}

little_endian_object!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);
