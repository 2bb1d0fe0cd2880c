//! Who the benchmark's organizations hold: skewed sizes, names from many languages,
//! and the filters a front desk types, drawn from each directory itself.

use gatehouse::domain::OrgId;
use gatehouse::store::{AnyMatch, UserSearch};
use serde_json::{Value, json};

const FIRST: &[&str] = &[
    "Ana",
    "Bruno",
    "Chloé",
    "Dmitri",
    "Élodie",
    "Fatima",
    "Gabriel",
    "Hana",
    "Ibrahim",
    "Jürgen",
    "Kaito",
    "Lucía",
    "Mateo",
    "Nadia",
    "Olivia",
    "Pedro",
    "Quinn",
    "Renée",
    "Sofia",
    "Tomás",
    "Uma",
    "Valentina",
    "William",
    "Ximena",
    "Yusuf",
    "Zoë",
    "Søren",
    "Łukasz",
    "Иван",
    "Мария",
    "Ольга",
    "محمد",
    "فاطمة",
    "伟",
    "芳",
    "Nguyệt",
    "Ayşe",
    "Siobhán",
    "Priya",
    "Kwame",
];
const LAST: &[&str] = &[
    "García",
    "Smith",
    "Müller",
    "Nguyễn",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Silva",
    "Tanaka",
    "Kim",
    "Ivanova",
    "Johansson",
    "O'Brien",
    "Okafor",
    "Haddad",
    "Cohen",
    "Papadopoulos",
    "Novak",
    "Yılmaz",
    "Andersen",
    "Fernández",
    "Martin",
    "Schmidt",
    "Brown",
    "Wilson",
    "Petrov",
    "Смирнов",
    "Кузнецова",
    "الحسيني",
    "王",
    "李",
    "Chen",
    "Patel",
    "Sharma",
    "Mensah",
    "Ó Súilleabháin",
    "Lefèvre",
    "Zieliński",
    "Horváth",
    "Dvořák",
    "Lindqvist",
    "Hernández",
    "López",
    "González",
    "Pérez",
    "Sánchez",
    "Ramírez",
    "Torres",
    "Flores",
    "Rivera",
];

/// One organization of the benchmark: its number, ID, first person and size.
#[derive(Debug, Clone)]
pub struct Org {
    pub index: usize,
    pub id: OrgId,
    pub first: usize,
    pub size: usize,
}

/// `orgs` organizations holding `users` in all, the largest a tenth of them and the rest
/// falling off as a power law (a few large groups, many small practices).
pub fn orgs(users: usize, orgs: usize) -> Vec<Org> {
    let largest = users / 10;
    let rest = users - largest;
    let weights: Vec<f64> = (1..orgs).map(|i| 1.0 / (i as f64).powf(0.7)).collect();
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = std::iter::once(largest)
        .chain(
            weights
                .iter()
                .map(|w| ((w / sum) * rest as f64).floor().max(1.0) as usize),
        )
        .collect();
    // Rounding leaves a few over or under: the second organization takes the difference.
    let total: usize = sizes.iter().sum();
    if orgs > 1 {
        sizes[1] = (sizes[1] + users).saturating_sub(total).max(1);
    }
    let mut first = 0;
    sizes
        .into_iter()
        .enumerate()
        .map(|(index, size)| {
            let org = Org {
                index,
                id: OrgId(index as i64 + 1),
                first,
                size,
            };
            first += size;
            org
        })
        .collect()
}

/// One person of the benchmark, by their number among all users.
pub struct Person {
    pub first: String,
    pub last: String,
    pub username: String,
    pub email: String,
    pub mobile: String,
}

impl Person {
    pub fn of(i: usize) -> Self {
        let first = FIRST[i % FIRST.len()].to_owned();
        let round = i / (FIRST.len() * LAST.len());
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        // A suffix keeps the names varied beyond the lists, as real directories are.
        let last = if round > 0 {
            format!("{last}-{round}")
        } else {
            last.to_owned()
        };
        let username = format!("u{i:07}");
        Self {
            first,
            last,
            email: format!("{username}@mail.example"),
            username,
            mobile: format!("+1503{:07}", (i * 7_919) % 10_000_000),
        }
    }
}

/// The first `n` characters of `text`.
fn prefix(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// The `n`th filter of a run over `org`: the six a front desk types (a name fragment, a
/// first name and the start of a last name, a username start, an email, a mobile ending,
/// three letters with a status), then a rare status with a broad name.
pub fn filter(org: &Org, n: usize) -> Value {
    let person = Person::of(org.first + (n * 7_919) % org.size);
    match n % 7 {
        0 => json!({ "name": prefix(&person.last, 4) }),
        1 => {
            json!({ "search": format!("{} {}", person.first.to_lowercase(), prefix(&person.last.to_lowercase(), 3)) })
        }
        2 => json!({ "username": prefix(&person.username, 6) }),
        3 => json!({ "email": format!("{}@", person.username) }),
        4 => json!({ "mobile": person.mobile[person.mobile.len() - 4..].to_owned() }),
        5 => json!({ "search": prefix(&person.first, 3), "status": "INVITED" }),
        _ => json!({ "name": prefix(&person.first, 3), "status": "INACTIVE" }),
    }
}

/// A filter as the store takes it (folded as the app folds it).
pub fn store_search(filter: &Value) -> UserSearch {
    use gatehouse::domain::search::{digits, fold};
    let text = |key: &str| filter.get(key).and_then(Value::as_str);
    UserSearch {
        name: text("name").map(fold),
        username: text("username").map(str::to_lowercase),
        email: text("email").map(str::to_lowercase),
        mobile: text("mobile").map(digits),
        any: text("search").map(|t| AnyMatch {
            text: fold(t),
            digits: None,
        }),
        status: text("status").map(|s| s.parse().unwrap()),
        ..Default::default()
    }
}
