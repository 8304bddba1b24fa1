use super::{config_entry, hash_of_input, new_token};

#[test]
fn the_hash_ignores_the_trailing_newline_and_refuses_empty_input() {
    // Proves `echo TOKEN | hyperraft token hash` prints the SHA-256 of TOKEN alone, and an empty or spaced input is an error.
    let expected = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
    assert_eq!(hash_of_input("s3cret\n").unwrap(), expected);
    assert_eq!(hash_of_input("s3cret").unwrap(), expected);
    assert!(hash_of_input("\n").is_err());
    assert!(hash_of_input("two words").is_err());
}

#[test]
fn new_tokens_are_random_and_their_entry_holds_the_hash_not_the_token() {
    // Proves `token new` makes distinct 256-bit tokens and prints an [[api.tokens]] entry with the name, role and hash of the token, never the token itself.
    let (first, second) = (new_token().unwrap(), new_token().unwrap());
    assert_ne!(first, second);
    assert_eq!(first.len(), 4 + 64);
    let hash = hash_of_input(&first).unwrap();
    let entry = config_entry("agent-7", hyperraft_api::Role::Write, &hash);
    assert!(!entry.contains(&first));
    assert_eq!(entry, format!("[[api.tokens]]\nname = \"agent-7\"\nrole = \"write\"\nsha256 = \"{hash}\"\n"));
}
