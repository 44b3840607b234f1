//! Enums kept in `text` columns: each is written and read through its own `as_str` and
//! `parse`, so the enum is the one list of its values and a row holding anything else is an
//! error, not a silent default.

/// Implements sqlx's `Type`, `Encode` and `Decode` for Postgres for an enum with
/// `fn as_str(self) -> &'static str` and `fn parse(&str) -> Option<Self>`.
macro_rules! stored_as_text {
    ($enum:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $enum {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $enum {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $enum {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let raw = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$enum>::parse(raw)
                    .ok_or_else(|| format!("`{raw}` is not a {}", stringify!($enum)).into())
            }
        }
    };
}

pub(crate) use stored_as_text;
