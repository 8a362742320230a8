//! Static vocabulary for the demo generator.
//!
//! Kept apart from the document builders so the builders read as document
//! shapes, not as word lists. The lists lean on non-ASCII text on purpose:
//! flatten, Parquet and BigQuery must carry accents, CJK, RTL scripts,
//! combining marks and emoji unchanged, and ASCII-only demo data would never
//! show a mangled byte.

/// A city with everything an address, a currency and a language need, so
/// the pieces of one address agree with each other.
pub(super) struct City {
    pub name: &'static str,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// `#` is a digit, `@` an uppercase ASCII letter, anything else literal.
    pub zip: &'static str,
    pub language: &'static str,
    /// ISO 4217.
    pub currency: &'static str,
    /// Whether the house number comes first ("221 Baker Street") or last
    /// ("Hauptstraße 5").
    pub number_first: bool,
    pub streets: &'static [&'static str],
}

// One row per city reads better than rustfmt's one line per field.
#[rustfmt::skip]
pub(super) const CITIES: &[City] = &[
    City {
        name: "Berlin",
        country: "DE",
        lat: 52.52,
        lon: 13.405,
        zip: "#####",
        language: "de",
        currency: "EUR",
        number_first: false,
        streets: &["Hauptstraße", "Friedrichstraße", "Karl-Marx-Allee"],
    },
    City {
        name: "München",
        country: "DE",
        lat: 48.137,
        lon: 11.575,
        zip: "#####",
        language: "de",
        currency: "EUR",
        number_first: false,
        streets: &["Leopoldstraße", "Maximilianstraße"],
    },
    City {
        name: "Paris",
        country: "FR",
        lat: 48.857,
        lon: 2.352,
        zip: "#####",
        language: "fr",
        currency: "EUR",
        number_first: true,
        streets: &["Rue de Rivoli", "Boulevard Saint-Germain", "Rue de la Paix"],
    },
    City {
        name: "Lyon",
        country: "FR",
        lat: 45.764,
        lon: 4.836,
        zip: "#####",
        language: "fr",
        currency: "EUR",
        number_first: true,
        streets: &["Rue de la République", "Quai Saint-Antoine"],
    },
    City {
        name: "Madrid",
        country: "ES",
        lat: 40.417,
        lon: -3.704,
        zip: "#####",
        language: "es",
        currency: "EUR",
        number_first: false,
        streets: &["Calle Mayor", "Gran Vía", "Calle de Alcalá"],
    },
    City {
        name: "São Paulo",
        country: "BR",
        lat: -23.551,
        lon: -46.633,
        zip: "#####-###",
        language: "pt-BR",
        currency: "BRL",
        number_first: false,
        streets: &["Avenida Paulista", "Rua Augusta"],
    },
    City {
        name: "Zürich",
        country: "CH",
        lat: 47.377,
        lon: 8.541,
        zip: "####",
        language: "de",
        currency: "CHF",
        number_first: false,
        streets: &["Bahnhofstrasse", "Limmatquai"],
    },
    City {
        name: "Stockholm",
        country: "SE",
        lat: 59.329,
        lon: 18.069,
        zip: "### ##",
        language: "sv",
        currency: "SEK",
        number_first: false,
        streets: &["Drottninggatan", "Götgatan"],
    },
    City {
        name: "Kraków",
        country: "PL",
        lat: 50.065,
        lon: 19.945,
        zip: "##-###",
        language: "pl",
        currency: "PLN",
        number_first: false,
        streets: &["ulica Floriańska", "ulica Grodzka"],
    },
    City {
        name: "東京",
        country: "JP",
        lat: 35.676,
        lon: 139.65,
        zip: "###-####",
        language: "ja",
        currency: "JPY",
        number_first: false,
        streets: &["銀座", "渋谷"],
    },
    City {
        name: "北京",
        country: "CN",
        lat: 39.904,
        lon: 116.407,
        zip: "######",
        language: "zh-CN",
        currency: "CNY",
        number_first: false,
        streets: &["长安街", "王府井大街"],
    },
    City {
        name: "Reykjavík",
        country: "IS",
        lat: 64.147,
        lon: -21.942,
        zip: "###",
        language: "is",
        currency: "ISK",
        number_first: false,
        streets: &["Laugavegur", "Skólavörðustígur"],
    },
    City {
        name: "New York",
        country: "US",
        lat: 40.713,
        lon: -74.006,
        zip: "#####",
        language: "en",
        currency: "USD",
        number_first: true,
        streets: &["Broadway", "5th Avenue"],
    },
    City {
        name: "Montréal",
        country: "CA",
        lat: 45.502,
        lon: -73.567,
        zip: "@#@ #@#",
        language: "fr",
        currency: "CAD",
        number_first: true,
        streets: &["Rue Sainte-Catherine", "Boulevard Saint-Laurent"],
    },
    City {
        name: "London",
        country: "GB",
        lat: 51.507,
        lon: -0.128,
        zip: "@@# #@@",
        language: "en",
        currency: "GBP",
        number_first: true,
        streets: &["Baker Street", "Abbey Road"],
    },
    City {
        name: "Sydney",
        country: "AU",
        lat: -33.869,
        lon: 151.209,
        zip: "####",
        language: "en",
        currency: "AUD",
        number_first: true,
        streets: &["George Street", "Pitt Street"],
    },
    City {
        name: "Cape Town",
        country: "ZA",
        lat: -33.925,
        lon: 18.424,
        zip: "####",
        language: "en",
        currency: "ZAR",
        number_first: true,
        streets: &["Long Street", "Bree Street"],
    },
    City {
        name: "Mumbai",
        country: "IN",
        lat: 19.076,
        lon: 72.878,
        zip: "######",
        language: "hi",
        currency: "INR",
        number_first: true,
        streets: &["Marine Drive", "Linking Road"],
    },
    City {
        name: "القاهرة",
        country: "EG",
        lat: 30.044,
        lon: 31.236,
        zip: "#####",
        language: "ar",
        currency: "EGP",
        number_first: true,
        streets: &["شارع التحرير", "Talaat Harb Street"],
    },
    City {
        name: "Київ",
        country: "UA",
        lat: 50.45,
        lon: 30.523,
        zip: "#####",
        language: "uk",
        currency: "UAH",
        number_first: false,
        streets: &["Хрещатик", "вулиця Володимирська"],
    },
];

/// `(display, ascii slug for the e-mail address)`. "Zoe\u{308}" is "Zoë"
/// in decomposed form (NFD): it renders like the NFC entry but has other
/// bytes, as real sign-up data does.
pub(super) const FIRST_NAMES: &[(&str, &str)] = &[
    ("Zoë", "zoe"),
    ("Zoe\u{308}", "zoe"),
    ("José", "jose"),
    ("Søren", "soren"),
    ("Björn", "bjorn"),
    ("François", "francois"),
    ("Łukasz", "lukasz"),
    ("Chloé", "chloe"),
    ("Ana", "ana"),
    ("Noah", "noah"),
    ("Olivia", "olivia"),
    ("Aarav", "aarav"),
    ("Fatima", "fatima"),
    ("Mehmet", "mehmet"),
    ("Ingrid", "ingrid"),
    ("Siobhán", "siobhan"),
    ("Émilie", "emilie"),
    ("Jürgen", "jurgen"),
    ("Ólafur", "olafur"),
    ("Mária", "maria"),
];

pub(super) const LAST_NAMES: &[(&str, &str)] = &[
    ("Ångström", "angstrom"),
    ("Müller", "muller"),
    ("García", "garcia"),
    ("Nováková", "novakova"),
    ("Dvořák", "dvorak"),
    ("O'Brien", "obrien"),
    ("Smith", "smith"),
    ("Nguyễn", "nguyen"),
    ("Kowalski", "kowalski"),
    ("Øster", "oster"),
    ("Þórsson", "thorsson"),
    ("Schäfer", "schafer"),
    ("da Silva", "dasilva"),
    ("Yılmaz", "yilmaz"),
    ("van der Berg", "vanderberg"),
];

/// Whole names in scripts where "first last" from the lists above would
/// be wrong (family name first, no space, other alphabets).
pub(super) const WHOLE_NAMES: &[(&str, &str)] = &[
    ("李雷", "li.lei"),
    ("韩梅梅", "han.meimei"),
    ("王芳", "wang.fang"),
    ("佐藤 花子", "sato.hanako"),
    ("김민준", "kim.minjun"),
    ("Ελένη Παπαδοπούλου", "eleni.papadopoulou"),
    ("Иван Петров", "ivan.petrov"),
    ("محمد علي", "mohamed.ali"),
    ("אביגיל כהן", "avigail.cohen"),
];

pub(super) const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "posteo.example",
    "correo.example",
];

pub(super) const USER_TAGS: &[&str] = &[
    "vip",
    "beta",
    "b2b",
    "early-adopter",
    "churn-risk",
    "mobile",
    "desktop",
    "wholesale",
];

pub(super) const LANGUAGES: &[&str] = &[
    "en", "de", "fr", "es", "pt-BR", "sv", "pl", "ja", "zh-CN", "ar",
];

/// `(source, weight)`; "referral" is chosen by the referrer, not drawn.
pub(super) const SIGNUP_SOURCES: &[(&str, u32)] = &[
    ("organic", 40),
    ("google_ads", 20),
    ("facebook", 12),
    ("newsletter", 10),
    ("partner_api", 8),
    ("app_store", 10),
];

pub(super) const ORDER_STATUSES: &[(&str, u32)] = &[
    ("pending", 8),
    ("paid", 15),
    ("shipped", 25),
    ("delivered", 40),
    ("cancelled", 7),
    ("refunded", 5),
    // Internal test orders, which the demo `orders` pipeline filters out.
    ("test", 1),
];

pub(super) const PAYMENT_METHODS: &[(&str, u32)] = &[
    ("card", 60),
    ("paypal", 20),
    ("bank_transfer", 10),
    ("klarna", 7),
    ("gift_card", 3),
];

pub(super) const CARD_BRANDS: &[&str] = &["visa", "mastercard", "amex", "maestro", "jcb"];

pub(super) const CARRIERS: &[&str] = &[
    "DHL",
    "UPS",
    "FedEx",
    "DPD",
    "GLS",
    "PostNord",
    "La Poste",
    "Correios",
    "Japan Post",
    "Royal Mail",
];

/// `(code, percent off)`.
pub(super) const DISCOUNTS: &[(&str, u32)] = &[
    ("SUMMER10", 10),
    ("WELCOME5", 5),
    ("LOYALTY15", 15),
    ("BUNDLE", 8),
    ("FREESHIP", 0),
    ("BLACKFRIDAY", 25),
];

/// Includes an empty string and control characters: both reach real
/// pipelines through free-text fields.
pub(super) const ORDER_NOTES: &[&str] = &[
    "Bitte beim Nachbarn abgeben.",
    "Laisser devant la porte 🚪",
    "请放在门口",
    "配達前に電話してください",
    "Leave at the door, thanks! 📦",
    "Ring twice — the dog is friendly 🐕",
    "Entregar después de las 18h",
    "Gift wrap please 🎁 \"Happy birthday, Zoë!\"",
    "Line one\nLine two",
    "Floor 3\tdoor B",
    "التسليم بعد الظهر",
    "",
];

pub(super) struct Category {
    pub name: &'static str,
    /// Short code used in SKUs.
    pub code: &'static str,
    pub nouns: &'static [&'static str],
    pub materials: &'static [&'static str],
    pub sizes: &'static [&'static str],
    /// Grams, `lo..hi`.
    pub weight: (i32, i32),
}

#[rustfmt::skip]
pub(super) const CATEGORIES: &[Category] = &[
    Category {
        name: "apparel",
        code: "APP",
        nouns: &["T-Shirt", "Hoodie", "Scarf", "Socks", "Jacket", "Beanie"],
        materials: &["cotton", "wool", "linen", "recycled polyester", "merino"],
        sizes: &["XS", "S", "M", "L", "XL", "XXL"],
        weight: (40, 1200),
    },
    Category {
        name: "home",
        code: "HOM",
        nouns: &["Mug", "Towel", "Lamp", "Cushion", "Vase", "Blanket"],
        materials: &["ceramic", "linen", "glass", "oak", "bamboo"],
        sizes: &["one-size", "S", "M", "L"],
        weight: (150, 4000),
    },
    Category {
        name: "electronics",
        code: "ELE",
        nouns: &[
            "Charger",
            "Headphones",
            "Speaker",
            "USB-C Cable",
            "Keyboard",
            "Power Bank",
        ],
        materials: &["aluminium", "ABS plastic", "silicone", "steel"],
        sizes: &["one-size"],
        weight: (20, 2500),
    },
    Category {
        name: "garden",
        code: "GAR",
        nouns: &["Planter", "Trowel", "Hose", "Bird Feeder", "Watering Can"],
        materials: &["terracotta", "steel", "cedar", "recycled plastic"],
        sizes: &["S", "M", "L"],
        weight: (100, 8000),
    },
    Category {
        name: "kitchen",
        code: "KIT",
        nouns: &["Knife", "Cutting Board", "Teapot", "Pan", "Espresso Cup"],
        materials: &["steel", "walnut", "cast iron", "porcelain"],
        sizes: &["one-size", "S", "L"],
        weight: (80, 3500),
    },
    Category {
        name: "sports",
        code: "SPO",
        nouns: &["Yoga Mat", "Water Bottle", "Jump Rope", "Backpack"],
        materials: &["natural rubber", "steel", "nylon", "cork"],
        sizes: &["one-size", "S", "M", "L"],
        weight: (90, 2500),
    },
];

pub(super) const PRODUCT_ADJECTIVES: &[&str] = &[
    "Classic",
    "Nordic",
    "Eco",
    "Compact",
    "Deluxe",
    "Vintage",
    "Smart",
    "Gemütliche",
    "Très Chic",
    "Rústico",
    "和風",
    "Ultraleicht",
];

/// Suffixes for a minority of product names: punctuation, typographic
/// dashes and emoji in otherwise plain names.
pub(super) const PRODUCT_SUFFIXES: &[&str] = &[
    " – Édition Limitée",
    " (2-pack)",
    " 🎁",
    " ★★★",
    " «Premium»",
];

pub(super) const COLORS: &[&str] = &[
    "black",
    "white",
    "navy",
    "forest green",
    "bordeaux",
    "sand",
    "sky blue",
    "charcoal",
    "ochre",
];

pub(super) const PRODUCT_TAGS: &[&str] = &[
    "new",
    "bestseller",
    "sale",
    "eco",
    "handmade",
    "gift-idea",
    "limited",
    "clearance",
];

/// `(name, ISO country, contact domain)`.
pub(super) const SUPPLIERS: &[(&str, &str, &str)] = &[
    ("Müller & Söhne GmbH", "DE", "mueller-soehne.example"),
    ("Åkesson AB", "SE", "akesson.example"),
    ("Industrias García S.A.", "ES", "garcia.example"),
    ("深圳华强电子有限公司", "CN", "huaqiang.example"),
    ("Acme Corp", "US", "acme.example"),
    ("Nordic Goods Oy", "FI", "nordicgoods.example"),
    ("O'Malley Bros Ltd", "IE", "omalley.example"),
    ("Ateliê São Jorge Ltda", "BR", "saojorge.example"),
];
