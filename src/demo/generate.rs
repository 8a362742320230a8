//! Document builders: every document is a pure function of
//! `(seed, collection, index)`.
//!
//! Each collection has one ChaCha8 key, `seed ^ <collection constant>`, and
//! each document draws from its own ChaCha *streams* of that key, one per
//! purpose (identity, timestamp, body, anomaly choice). Streams rather than
//! one sequential RNG because an order must carry its customer's real name
//! and e-mail, and a user's `referrer_id` must be another user's real `_id`:
//! with per-document streams those are recomputed in O(1) instead of
//! generating (or holding) every user first. It also means adding a field
//! to one purpose never reshuffles the others.
//!
//! Nothing here reads the clock or the environment, and nothing produces
//! what FerretDB rejects (Decimal128, arrays inside arrays, NaN/Inf, keys
//! with `.` or a leading `$`); the unit tests in `mod.rs` walk every value.

use bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::words::{
    Category, City, CARD_BRANDS, CARRIERS, CATEGORIES, CITIES, COLORS, DISCOUNTS, EMAIL_DOMAINS,
    FIRST_NAMES, LANGUAGES, LAST_NAMES, ORDER_NOTES, ORDER_STATUSES, PAYMENT_METHODS,
    PRODUCT_ADJECTIVES, PRODUCT_SUFFIXES, PRODUCT_TAGS, SIGNUP_SOURCES, SUPPLIERS, USER_TAGS,
    WHOLE_NAMES,
};
use super::{boundaries, DemoOptions, BOUNDARY_DOCS};

// Per-collection key constants ("users", "orders", "products" in ASCII):
// the same seed must still give unrelated streams in each collection.
const USERS_KEY: u64 = 0x0000_7573_6572_7301;
const ORDERS_KEY: u64 = 0x006f_7264_6572_7302;
const PRODUCTS_KEY: u64 = 0x7072_6f64_7563_7403;

/// One regular document in every block of this many carries an anomaly
/// (missing field or type drift): 1/30 ≈ 3.3%, inside the 2-5% target, and
/// exact per block instead of a coin flip that small counts could miss.
pub(super) const ANOMALY_EVERY: usize = 30;

const MS_PER_DAY: i64 = 86_400_000;

/// What a ChaCha stream is used for. The stream number is
/// `(n << 3) | purpose`, so purposes never share a stream.
#[derive(Clone, Copy)]
enum Purpose {
    Identity = 0,
    CreatedAt = 1,
    Body = 2,
    Anomaly = 3,
    ObjectId = 4,
}

/// The key of one collection plus its ObjectId "process" bytes.
struct Keyed {
    base: ChaCha8Rng,
    oid_process: [u8; 5],
    oid_counter: u32,
}

impl Keyed {
    fn new(seed: u64, key: u64) -> Self {
        let base = ChaCha8Rng::seed_from_u64(seed ^ key);
        let mut keyed = Self {
            base,
            oid_process: [0; 5],
            oid_counter: 0,
        };
        let mut rng = keyed.rng(Purpose::ObjectId, 0);
        rng.fill_bytes(&mut keyed.oid_process);
        keyed.oid_counter = rng.next_u32() & 0x00ff_ffff;
        keyed
    }

    fn rng(&self, purpose: Purpose, n: u64) -> ChaCha8Rng {
        // A fresh clone has consumed nothing, so the new stream starts at
        // word 0 and depends only on (key, stream).
        let mut rng = self.base.clone();
        rng.set_stream((n << 3) | purpose as u64);
        rng
    }

    /// Laid out like a driver-made ObjectId (seconds, 5 "process" bytes, a
    /// 3-byte counter from a random start), so `_id.getTimestamp()` equals
    /// `created_at` truncated to the second and ids are unique for the
    /// first 2^24 documents of a collection.
    fn object_id(&self, created_ms: i64, index: usize) -> ObjectId {
        let secs = created_ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32;
        let counter = self.oid_counter.wrapping_add(index as u32) & 0x00ff_ffff;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(&self.oid_process);
        bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
        ObjectId::from_bytes(bytes)
    }
}

/// The name, e-mail and address of a user, shared by `users` and by the
/// `customer` of `orders`.
struct Person {
    name: String,
    email: String,
    address: Address,
}

struct Address {
    street: String,
    city: &'static City,
    zip: String,
    lat: f64,
    lon: f64,
}

impl Address {
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let city = pick_ref(rng, CITIES);
        let street_name = pick(rng, city.streets);
        let number: u32 = rng.gen_range(1..=250);
        let street = if city.number_first {
            format!("{number} {street_name}")
        } else {
            format!("{street_name} {number}")
        };
        let zip = city
            .zip
            .chars()
            .map(|c| match c {
                '#' => char::from(b'0' + rng.gen_range(0..10u8)),
                '@' => char::from(b'A' + rng.gen_range(0..26u8)),
                other => other,
            })
            .collect();
        // Jitter inside the city; 6 decimals is what geocoders return.
        let lat = round_to(city.lat + rng.gen_range(-0.05..0.05), 1e6);
        let lon = round_to(city.lon + rng.gen_range(-0.05..0.05), 1e6);
        Self {
            street,
            city,
            zip,
            lat,
            lon,
        }
    }

    fn to_doc(&self) -> Document {
        doc! {
            "street": &self.street,
            "city": self.city.name,
            "country": self.city.country,
            "zip": &self.zip,
            "geo": { "lat": self.lat, "lon": self.lon },
        }
    }
}

/// What an order line needs to agree with its `products` document.
struct ProductCore {
    sku: String,
    name: String,
    category: &'static Category,
    price: f64,
}

/// Start and exclusive end of the `created_at` range, plus the boundary
/// instants given to the first [`BOUNDARY_DOCS`] documents.
struct Timeline {
    start_ms: i64,
    end_ms: i64,
    boundary_ms: [i64; BOUNDARY_DOCS],
}

/// Builds documents for one set of options. Cheap to create: three
/// ChaCha key setups.
pub(super) struct Generator {
    users_count: usize,
    products_count: usize,
    timeline: Timeline,
    users: Keyed,
    orders: Keyed,
    products: Keyed,
}

impl Generator {
    pub(super) fn new(opts: &DemoOptions) -> Self {
        let start = super::midnight_ms(opts.start);
        let end = super::midnight_ms(opts.end.max(opts.start)) + MS_PER_DAY;
        let boundary_ms = boundaries(opts).map(|b| b.at.timestamp_millis());
        Self {
            users_count: opts.users,
            products_count: opts.products,
            timeline: Timeline {
                start_ms: start,
                end_ms: end,
                boundary_ms,
            },
            users: Keyed::new(opts.seed, USERS_KEY),
            orders: Keyed::new(opts.seed, ORDERS_KEY),
            products: Keyed::new(opts.seed, PRODUCTS_KEY),
        }
    }

    /// The first documents sit on the boundary instants; the rest are
    /// uniform over the range, to the millisecond.
    fn created_at(&self, keyed: &Keyed, index: usize) -> i64 {
        match self.timeline.boundary_ms.get(index) {
            Some(&at) => at,
            None => {
                let t = &self.timeline;
                t.start_ms
                    + keyed
                        .rng(Purpose::CreatedAt, index as u64)
                        .gen_range(0..t.end_ms - t.start_ms)
            }
        }
    }

    /// A later instant within `max_ms`, never past the end of the range, so
    /// `updated_at` cannot land on "today" or later.
    fn later(&self, rng: &mut ChaCha8Rng, at: i64, max_ms: i64) -> i64 {
        let room = (self.timeline.end_ms - 1 - at).clamp(0, max_ms);
        at + rng.gen_range(0..=room)
    }

    /// The anomaly bits of a document, or 0 for a regular one. Boundary
    /// documents stay regular so timestamp tests never meet drift.
    fn anomalies(&self, keyed: &Keyed, index: usize) -> u8 {
        let Some(regular) = index.checked_sub(BOUNDARY_DOCS) else {
            return 0;
        };
        let block = regular / ANOMALY_EVERY;
        let mut rng = keyed.rng(Purpose::Anomaly, block as u64);
        if regular % ANOMALY_EVERY != rng.gen_range(0..ANOMALY_EVERY) {
            return 0;
        }
        // One kind, sometimes two: real drift rarely comes alone.
        let mut bits = 1u8 << rng.gen_range(0..4);
        if rng.gen_ratio(3, 10) {
            bits |= 1u8 << rng.gen_range(0..4);
        }
        bits
    }

    fn person(&self, index: usize) -> Person {
        let rng = &mut self.users.rng(Purpose::Identity, index as u64);
        let (name, slug) = if rng.gen_ratio(3, 20) {
            let (name, slug) = pick(rng, WHOLE_NAMES);
            (name.to_string(), slug.to_string())
        } else {
            let (first, first_slug) = pick(rng, FIRST_NAMES);
            let (last, last_slug) = pick(rng, LAST_NAMES);
            (
                format!("{first} {last}"),
                format!("{first_slug}.{last_slug}"),
            )
        };
        let domain = pick(rng, EMAIL_DOMAINS);
        // The user id keeps addresses unique without a lookup table.
        let user_id = index + 1;
        let email = if rng.gen_ratio(1, 20) {
            format!("{slug}+shop{user_id}@{domain}")
        } else {
            format!("{slug}{user_id}@{domain}")
        };
        Person {
            name,
            email,
            address: Address::random(rng),
        }
    }

    fn user_object_id(&self, index: usize) -> ObjectId {
        self.users
            .object_id(self.created_at(&self.users, index), index)
    }

    fn product_core(&self, index: usize) -> ProductCore {
        let rng = &mut self.products.rng(Purpose::Identity, index as u64);
        let category = pick_ref(rng, CATEGORIES);
        let mut name = format!(
            "{} {}",
            pick(rng, PRODUCT_ADJECTIVES),
            pick(rng, category.nouns)
        );
        if rng.gen_ratio(3, 20) {
            name.push_str(pick(rng, PRODUCT_SUFFIXES));
        }
        let sku = format!("{}-{:06}", category.code, index + 1);
        // Whole cents divided once, so 19.99 is the double nearest 19.99.
        let cents = rng.gen_range(2..300) * 100 + pick(rng, &[0, 49, 50, 95, 99]);
        ProductCore {
            sku,
            name,
            category,
            price: cents as f64 / 100.0,
        }
    }

    pub(super) fn user(&self, index: usize) -> Document {
        const NO_ADDRESS: u8 = 1;
        const LOYALTY_AS_STRING: u8 = 2;
        const BALANCE_AS_STRING: u8 = 4;
        const NO_LANGUAGE: u8 = 8;

        let created = self.created_at(&self.users, index);
        let person = self.person(index);
        let rng = &mut self.users.rng(Purpose::Body, index as u64);

        let updated = self.later(rng, created, 3 * MS_PER_DAY);
        let tag_count = rng.gen_range(0..=3);
        let tags = pick_distinct(rng, USER_TAGS, tag_count);
        let newsletter = rng.gen_bool(0.4);
        let language = if rng.gen_ratio(4, 5) {
            person.address.city.language
        } else {
            pick(rng, LANGUAGES)
        };
        let referrer = if self.users_count > 1 && rng.gen_ratio(1, 4) {
            // Any other user; skipping `index` keeps self-referral out.
            let other = rng.gen_range(0..self.users_count - 1);
            Some(self.user_object_id(if other >= index { other + 1 } else { other }))
        } else {
            None
        };
        let signup_source = if referrer.is_some() {
            "referral"
        } else {
            weighted(rng, SIGNUP_SOURCES)
        };
        let loyalty_points: i32 = if rng.gen_ratio(1, 5) {
            0
        } else {
            rng.gen_range(1..5000)
        };
        let balance = f64::from(rng.gen_range(0..50_000u32)) / 100.0;
        let api_key = uuid_binary(rng);

        let drift = self.anomalies(&self.users, index);
        let mut preferences = doc! { "newsletter": newsletter, "language": language };
        if drift & NO_LANGUAGE != 0 {
            preferences.remove("language");
        }
        let mut user = doc! {
            "_id": self.users.object_id(created, index),
            "user_id": index as i64 + 1,
            "email": person.email,
            "name": person.name,
            "created_at": DateTime::from_millis(created),
            "created_at_iso": iso_millis(created),
            "updated_at": DateTime::from_millis(updated),
            "address": person.address.to_doc(),
            "tags": tags,
            "preferences": preferences,
            "loyalty_points": loyalty_points,
            "balance": balance,
            "referrer_id": referrer,
            "api_key_uuid": api_key,
            "signup_source": signup_source,
        };
        if drift & NO_ADDRESS != 0 {
            user.remove("address");
        }
        if drift & LOYALTY_AS_STRING != 0 {
            user.insert("loyalty_points", loyalty_points.to_string());
        }
        if drift & BALANCE_AS_STRING != 0 {
            user.insert("balance", format!("{balance:.2}"));
        }
        user
    }

    pub(super) fn order(&self, index: usize) -> Document {
        const NO_CARD: u8 = 1;
        const QUANTITY_AS_STRING: u8 = 2;
        const NO_CUSTOMER_ADDRESS: u8 = 4;
        const TOTAL_AS_STRING: u8 = 8;

        let created = self.created_at(&self.orders, index);
        let rng = &mut self.orders.rng(Purpose::Body, index as u64);

        // With no users or products the ids still resolve (identities are
        // pure functions of the index); they just dangle.
        let customer_index = rng.gen_range(0..self.users_count.max(1));
        let customer = self.person(customer_index);
        let status = weighted(rng, ORDER_STATUSES);

        let item_count = weighted(
            rng,
            &[(1usize, 30), (2, 25), (3, 18), (4, 12), (5, 9), (6, 6)],
        );
        let mut items = Vec::with_capacity(item_count);
        let mut total = 0.0;
        for _ in 0..item_count {
            let product_index = rng.gen_range(0..self.products_count.max(1));
            let product = self.product_core(product_index);
            let quantity: i32 = weighted(rng, &[(1, 60), (2, 25), (3, 8), (4, 4), (5, 3)]);
            let discount_count = weighted(rng, &[(0usize, 70), (1, 25), (2, 5)]);
            let discounts = pick_distinct(rng, DISCOUNTS, discount_count);
            let percent_off: u32 = discounts.iter().map(|(_, off)| off).sum();
            total += product.price * f64::from(quantity) * f64::from(100 - percent_off) / 100.0;
            items.push(doc! {
                "sku": product.sku,
                "product_id": product_index as i64 + 1,
                "name": product.name,
                "quantity": quantity,
                "unit_price": product.price,
                "discounts": discounts.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
            });
        }
        let total = round_to(total, 100.0);

        let method = weighted(rng, PAYMENT_METHODS);
        // Null (not absent) for other methods: flatten must tell the two
        // apart, and the absent case is the anomaly below.
        let card = if method == "card" {
            Bson::Document(doc! {
                "brand": pick(rng, CARD_BRANDS),
                "last4": format!("{:04}", rng.gen_range(0..10_000)),
            })
        } else {
            Bson::Null
        };
        let paid_at = match status {
            "pending" | "cancelled" | "test" => Bson::Null,
            _ => Bson::DateTime(DateTime::from_millis(
                created + rng.gen_range(0..=15 * 60_000),
            )),
        };
        let carrier = pick(rng, CARRIERS);
        let tracking = uuid_binary(rng);
        let shipping_address = if rng.gen_ratio(1, 10) {
            Address::random(rng).to_doc() // a gift, shipped elsewhere
        } else {
            customer.address.to_doc()
        };
        let notes = rng.gen_ratio(7, 20).then(|| pick(rng, ORDER_NOTES));

        let drift = self.anomalies(&self.orders, index);
        let mut payment = doc! {
            "method": method,
            "card": card,
            "amount": total,
            "currency": customer.address.city.currency,
            "paid_at": paid_at,
        };
        if drift & NO_CARD != 0 {
            payment.remove("card");
        }
        if drift & QUANTITY_AS_STRING != 0 {
            if let Some(Bson::Int32(quantity)) = items[0].get("quantity").cloned() {
                items[0].insert("quantity", quantity.to_string());
            }
        }
        let mut customer_doc = doc! {
            "user_id": customer_index as i64 + 1,
            "email": customer.email,
            "name": customer.name,
            "address": customer.address.to_doc(),
        };
        if drift & NO_CUSTOMER_ADDRESS != 0 {
            customer_doc.remove("address");
        }
        let mut order = doc! {
            "_id": self.orders.object_id(created, index),
            "order_id": index as i64 + 1,
            "created_at": DateTime::from_millis(created),
            "status": status,
            "customer": customer_doc,
            "items": items,
            "payment": payment,
            "shipping": { "carrier": carrier, "tracking": tracking, "address": shipping_address },
        };
        if let Some(notes) = notes {
            order.insert("notes", notes);
        }
        order.insert("total", total);
        if drift & TOTAL_AS_STRING != 0 {
            order.insert("total", format!("{total:.2}"));
        }
        order
    }

    pub(super) fn product(&self, index: usize) -> Document {
        const PRICE_AS_STRING: u8 = 1;
        const NO_DIMENSIONS: u8 = 2;
        const WEIGHT_AS_STRING: u8 = 4;
        const NO_SUPPLIER: u8 = 8;

        let created = self.created_at(&self.products, index);
        let core = self.product_core(index);
        let category = core.category;
        let rng = &mut self.products.rng(Purpose::Body, index as u64);

        let color = pick(rng, COLORS);
        let size = pick(rng, category.sizes);
        let material = pick(rng, category.materials);
        let weight_grams: i32 = rng.gen_range(category.weight.0..category.weight.1);
        let mut dimension = || round_to(rng.gen_range(1.0..80.0), 10.0);
        let dimensions = doc! { "w": dimension(), "h": dimension(), "d": dimension() };

        // Changes after creation; the last entry is the current price.
        let changes = rng.gen_range(0..=3);
        let mut price_history = Vec::with_capacity(changes + 1);
        let mut at = created;
        for _ in 0..changes {
            let earlier = round_to(core.price * rng.gen_range(0.8..1.25), 100.0);
            price_history.push(doc! { "at": DateTime::from_millis(at), "price": earlier });
            at += rng.gen_range(3_600_000..3 * MS_PER_DAY);
        }
        price_history.push(doc! { "at": DateTime::from_millis(at), "price": core.price });

        let tag_count = rng.gen_range(0..=4);
        let tags = pick_distinct(rng, PRODUCT_TAGS, tag_count);
        // Int64 only where Int32 overflows, as drivers do: one field, two
        // integer types, which readers must widen.
        let stock = if rng.gen_ratio(1, 20) {
            Bson::Int64(rng.gen_range(3_000_000_000..20_000_000_000))
        } else if rng.gen_ratio(1, 8) {
            Bson::Int32(0)
        } else {
            Bson::Int32(rng.gen_range(1..=500))
        };
        let in_stock = !matches!(stock, Bson::Int32(0));
        let supplier = if rng.gen_ratio(3, 10) {
            Bson::Null
        } else {
            let (name, country, domain) = pick(rng, SUPPLIERS);
            Bson::Document(
                doc! { "name": name, "country": country, "contact_email": format!("sales@{domain}") },
            )
        };
        let mut digest = vec![0u8; 32];
        rng.fill_bytes(&mut digest);

        let drift = self.anomalies(&self.products, index);
        let mut attributes = doc! {
            "color": color,
            "size": size,
            "material": material,
            "weight_grams": weight_grams,
            "dimensions": dimensions,
        };
        if drift & NO_DIMENSIONS != 0 {
            attributes.remove("dimensions");
        }
        if drift & WEIGHT_AS_STRING != 0 {
            attributes.insert("weight_grams", weight_grams.to_string());
        }
        let mut product = doc! {
            "_id": self.products.object_id(created, index),
            "product_id": index as i64 + 1,
            "sku": core.sku,
            "name": core.name,
            "created_at": DateTime::from_millis(created),
            "category": category.name,
            "attributes": attributes,
            "price": core.price,
            "price_history": price_history,
            "tags": tags,
            "in_stock": in_stock,
            "stock": stock,
            "supplier": supplier,
            "image_digest": Binary { subtype: BinarySubtype::Generic, bytes: digest },
        };
        if drift & PRICE_AS_STRING != 0 {
            product.insert("price", format!("{:.2}", core.price));
        }
        if drift & NO_SUPPLIER != 0 {
            product.remove("supplier");
        }
        product
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    *pick_ref(rng, items)
}

fn pick_ref<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn pick_distinct<T: Copy>(rng: &mut ChaCha8Rng, items: &[T], count: usize) -> Vec<T> {
    rand::seq::index::sample(rng, items.len(), count.min(items.len()))
        .into_iter()
        .map(|i| items[i])
        .collect()
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|&(_, weight)| weight).sum();
    let mut roll = rng.gen_range(0..total);
    for &(value, weight) in table {
        if roll < weight {
            return value;
        }
        roll -= weight;
    }
    table[table.len() - 1].0
}

/// Rounds to `1 / scale` (100.0 for cents). Dividing a whole number once
/// gives the double nearest the decimal, as a parser would.
fn round_to(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

/// A random (version 4) UUID as BSON Binary subtype 4, the standard
/// representation drivers write.
fn uuid_binary(rng: &mut ChaCha8Rng) -> Binary {
    let uuid = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: uuid.as_bytes().to_vec(),
    }
}

/// ISO-8601 UTC with milliseconds and `Z`, the shape JavaScript's
/// `toISOString()` writes, which is how such strings reach MongoDB.
fn iso_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
